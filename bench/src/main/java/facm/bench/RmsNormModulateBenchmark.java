package facm.bench;

import facm.model.ModelConfig;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
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
 * RMSNorm fused with the adaLN modulation ({@link NetworkOps#rmsNormModulate}, a block's norm1: shift chunk 0, scale
 * chunk 1 of a {@code [B, 6D]} modulation), a bandwidth-bound kernel: x {@code [B,T,D]} in {@code dtype}, the output in
 * the first dtype the op accepts (see {@link KernelInputs#firstWorking}), rstd per row. One invocation queues
 * {@value #CALLS_PER_INVOCATION} calls and synchronizes.
 *
 * <p>Bytes per call (the floor's traffic): x read once, out written once, rstd written (4 bytes a row), the two
 * modulation chunks (2·B·D·4) and the weight (D·4) read; GB/s = bytes / GPU time, to set against the card's copy
 * bandwidth (tools/reference/torch_perf_bench.py measures it). Primary metric: calls/s; {@code gigabyte}: GB/s of wall
 * time; with {@code -prof facm.bench.GpuTimeProfiler} GB/s from CUDA-event time. {@code shape} is "BxTxD";
 * {@code -p backend=cpu -p shape=2x16x64} tries the harness without a GPU.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class RmsNormModulateBenchmark {
    static final int CALLS_PER_INVOCATION = 20;

    @Param({"F32", "BF16"})
    public String dtype;

    /** XL/1 at batch 32 (training), 64 and 256 (sampling). */
    @Param({"32x256x1152", "64x256x1152", "256x256x1152"})
    public String shape;

    @Param({"cuda"})
    public String backend;

    private Backend be;
    private NetworkOps ops;
    private KernelInputs tensors;
    private RegionTimer timer;
    private Tensor x;
    private Tensor weight;
    private Tensor mod;
    private Tensor out;
    private Tensor rstd;
    private double bytesPerInvocation;

    /** Bytes moved; JMH divides by the iteration's wall time. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Traffic {
        public double gigabyte;

        @Setup(Level.Iteration)
        public void reset() {
            gigabyte = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        GpuTimes.resetTrial();
        int[] s = AttentionBenchmark.parseShape(shape, 3, "BxTxD");
        int b = s[0];
        int t = s[1];
        int d = s[2];
        DType in = KernelInputs.dtype(dtype);
        be = TimingPreconditions.open(backend, "RmsNormModulateBenchmark");
        double cardRate = CardRate.bf16Tflops(be);
        ops = be.network();
        tensors = new KernelInputs(be);
        x = tensors.random("x", in, b, t, d);
        weight = tensors.random("norm.weight", DType.F32, d);
        mod = tensors.random("mod", DType.F32, b, 6 * d);
        rstd = tensors.empty("rstd", DType.F32, b, t);
        DType outType = tensors.firstWorking("rmsNormModulate " + shape, in, o -> {
            out = tensors.empty("out", o, b, t, d);
            ops.rmsNormModulate(x, weight, ModelConfig.NORM_EPS, mod, 0, 1, out, rstd);
        });
        long n = (long) b * t * d;
        double bytes = n * (double) in.bytes() + n * (double) outType.bytes() + 4.0 * b * t + 2.0 * b * d * 4 + 4.0 * d;
        bytesPerInvocation = CALLS_PER_INVOCATION * bytes;
        timer = new RegionTimer(be);
        GpuTimes.describe(new GpuTimes.Work("calls", CALLS_PER_INVOCATION, 0, bytesPerInvocation, cardRate));
        System.out.printf(Locale.ROOT, "%nRmsNormModulateBenchmark: %s, x %s -> %s, %.1f MB per call%n",
                be.describe(), x.describe(), out.describe(), bytes / 1e6);
    }

    @Benchmark
    @OperationsPerInvocation(CALLS_PER_INVOCATION)
    public void rmsNormModulate(Traffic counter) {
        timer.begin();
        for (int i = 0; i < CALLS_PER_INVOCATION; i++) {
            ops.rmsNormModulate(x, weight, ModelConfig.NORM_EPS, mod, 0, 1, out, rstd);
        }
        be.synchronize();
        timer.end();
        counter.gigabyte += bytesPerInvocation / 1e9;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        System.out.printf("%nRmsNormModulateBenchmark %s %s: %s%n", dtype, shape, GpuTimeProfiler.summary());
        if (timer != null) {
            timer.close();
        }
        if (tensors != null) {
            tensors.close();
        }
        if (be != null) {
            be.close();
        }
    }
}
