package facm.bench;

import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.sampling.ConsistencySampler;
import facm.tensor.Backend;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * Few-step sampling as a user runs it: {@link ConsistencySampler#sample} on a batch of class labels, i.e. the noise
 * z uploaded from the host, {@code nfe} network evaluations with the host-side state update and re-noise between them,
 * and the samples back on the device; each invocation ends with a synchronize. Random Philox weights (the speed does
 * not depend on them), noise drawn once in the setup (Philox, so every run samples the same).
 *
 * <p>Primary metric: samplings (whole batches) per second; {@code images}: images/s of wall time; {@code teraflop}:
 * TFLOP/s of wall time with {@link ModelFlops#forwardPerImage} per image and evaluation (≈ 237 GFLOP for XL/1). With
 * {@code -prof facm.bench.GpuTimeProfiler} also the CUDA-event time of the whole call (median), images/s and TFLOP/s
 * from it, and the fraction of the card's bf16 rate measured in the setup ({@link CardRate}).
 *
 * <p>The sampler is one {@link ConsistencySampler} object for the trial (CUDA graphs on by default, {@code -p
 * graphs=off} for eager launches) over a model with its bf16 weight copies cached, as `sample` and `eval` run it.
 *
 * <p>{@code precision}: fp32, tf32 or bf16 ({@link LightningDiT#precision}). {@code -p backend=cpu -p model=tiny
 * -p batch=2} tries the harness without a GPU.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
public class OneStepSampling {

    @Param({"B/1", "XL/1"})
    public String model;

    @Param({"64", "256"})
    public int batch;

    @Param({"fp32", "bf16"})
    public String precision;

    @Param({"1", "2"})
    public int nfe;

    @Param({"cuda"})
    public String backend;

    /** CUDA graphs for the forward (captured once per shape in setup's warm-up, replayed after): on or off. */
    @Param({"on"})
    public String graphs;

    private Backend be;
    private ModelWeights weights;
    private LightningDiT net;
    private ConsistencySampler sampler;
    private float[] noise;
    private int[] shape;
    private Tensor y;
    private RegionTimer timer;
    private double flopPerCall;

    /** Images and TFLOP done; JMH divides by the iteration's wall time. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Images {
        public double images;
        public double teraflop;

        @Setup(Level.Iteration)
        public void reset() {
            images = 0;
            teraflop = 0;
        }
    }

    static GemmPrecision precision(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "fp32" -> GemmPrecision.FP32;
            case "tf32" -> GemmPrecision.TF32;
            case "bf16" -> GemmPrecision.BF16;
            default -> throw new IllegalArgumentException("precision '" + name + "': use fp32, tf32 or bf16");
        };
    }

    @Setup(Level.Trial)
    public void setUp() {
        GpuTimes.resetTrial();
        if (nfe < 1 || batch < 1) {
            throw new IllegalArgumentException("OneStepSampling: nfe (" + nfe + ") and batch (" + batch
                    + ") must be >= 1");
        }
        be = TimingPreconditions.open(backend, "OneStepSampling");
        double cardRate = CardRate.bf16Tflops(be);
        ModelConfig c = Presets.get(model);
        weights = ModelWeights.philox(c, be, 1);
        net = new LightningDiT(weights).precision(precision(precision));
        // Frozen weights: one bf16 copy per weight for the whole trial, as `sample` and `eval` do.
        net.cacheBf16Weights(true);
        sampler = new ConsistencySampler(net, switch (graphs) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new IllegalArgumentException("graphs '" + graphs + "': use on or off");
        });
        shape = new int[] {batch, c.inChannels(), c.inputSize(), c.inputSize()};
        noise = new float[batch * c.inChannels() * c.inputSize() * c.inputSize()];
        for (int i = 0; i < noise.length; i++) {
            noise[i] = Philox.normal(5, i);
        }
        int[] labels = new int[batch];
        for (int i = 0; i < batch; i++) {
            labels[i] = i % c.numClasses();
        }
        y = be.upload("y", labels, batch);
        timer = new RegionTimer(be);
        flopPerCall = (double) nfe * batch * ModelFlops.forwardPerImage(c);
        GpuTimes.describe(new GpuTimes.Work("images", batch, flopPerCall, 0, cardRate));
        be.synchronize();
        be.resetPeakMemory();
        System.out.printf(Locale.ROOT, "%nOneStepSampling: %s on %s, batch %d, %s, NFE %d, %.1f GFLOP per image "
                + "and evaluation%n", c.summary(), be.describe(), batch, precision, nfe,
                ModelFlops.forwardPerImage(c) / 1e9);
    }

    @Benchmark
    public void sample(Images counter) {
        timer.begin();
        try (Tensor z = be.upload("z", noise, shape);
             Tensor samples = sampler.sample(z, y, nfe, 9)) {
            be.synchronize();
        }
        timer.end();
        GpuTimes.peakMemory(be.peakMemoryBytes());
        counter.images += batch;
        counter.teraflop += flopPerCall / 1e12;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (be != null) {
            GpuTimes.peakMemory(be.peakMemoryBytes());
            System.out.printf("%nOneStepSampling %s batch %d %s NFE %d: %s%n", model, batch, precision, nfe,
                    GpuTimeProfiler.summary());
        }
        if (timer != null) {
            timer.close();
        }
        if (sampler != null) {
            sampler.close();
        }
        if (y != null) {
            y.close();
        }
        if (weights != null) {
            weights.close();
        }
        if (be != null) {
            be.close();
        }
    }
}
