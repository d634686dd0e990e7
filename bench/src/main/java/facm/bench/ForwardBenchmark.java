package facm.bench;

import facm.backend.cuda.CudaBackend;
import facm.model.LightningDiT;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
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

import java.util.concurrent.TimeUnit;

/**
 * One LightningDiT forward pass F(x, t, y) on the GPU: the work of one-step sampling (x̂ = z + F(z, 0, y)) minus the
 * host-side state update. Random (Philox) weights, random non-zero inputs; each invocation synchronizes the stream.
 * The score is milliseconds per forward of the whole batch; images/s = batch / (ms / 1000).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
public class ForwardBenchmark {

    @Param({"XL/1"})
    public String model;

    @Param({"64", "256"})
    public int batch;

    @Param({"fp32", "tf32"})
    public String precision;

    private CudaBackend be;
    private ModelWeights weights;
    private LightningDiT net;
    private Tensor x;
    private Tensor t;
    private Tensor y;

    @Setup(Level.Trial)
    public void setUp() {
        TimingPreconditions.requireGpu("ForwardBenchmark");
        TimingPreconditions.requireAsynchronousLaunches("ForwardBenchmark");
        be = CudaBackend.open(0);
        weights = ModelWeights.philox(Presets.get(model), be, 1);
        net = new LightningDiT(weights).precision(precision.equals("tf32") ? GemmPrecision.TF32 : GemmPrecision.FP32);
        var c = weights.config();
        x = be.empty("x", DType.F32, batch, c.inChannels(), c.inputSize(), c.inputSize());
        be.randomNormal(x, 2, 0);
        t = be.zeros(DType.F32, batch);
        int[] labels = new int[batch];
        for (int i = 0; i < batch; i++) {
            labels[i] = i % c.numClasses();
        }
        y = be.upload("y", labels, batch);
        be.synchronize();
        System.out.println("\nForwardBenchmark: " + c.summary() + " on " + be.describe() + ", batch " + batch + ", "
                + precision);
    }

    @Benchmark
    public void forward() {
        try (Tensor out = net.forward(x, t, y)) {
            be.synchronize();
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        weights.close();
        be.close();
    }
}
