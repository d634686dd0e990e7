package facm.bench;

import facm.autograd.Gradients;
import facm.backend.cuda.CudaBackend;
import facm.cuda.ArenaStats;
import facm.data.Batch;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.model.Presets;
import facm.objectives.ConsistencyObjective;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
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

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * One FACM distillation step on the GPU (facm-spec.md §5.2; the counterpart of tools/reference/facm_step_bench.py):
 * upload the batch, draw t and ε, the guided teacher velocity (two teacher forwards, CFG 1.75 on [0.125, 1]), the FM
 * anchor at 2 − t (forward + backward), the JVP pass (primal with tape + tangent) and its backward, the consistency
 * loss, and AdamW on every trainable tensor through {@link TrainingOps#adamw} (lr 1e-4, betas (0.9, 0.999), no
 * clipping, no EMA). Random (Philox) student and teacher weights; each invocation ends with a stream synchronize.
 * Score: milliseconds per step; samples/s = batch / (ms / 1000). The peak arena use (teacher included) is printed at
 * the end.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 4)
public class FacmStepBenchmark {

    @Param({"B/1", "XL/1"})
    public String model;

    @Param({"16", "32"})
    public int batch;

    @Param({"bf16"})
    public String precision;

    private CudaBackend be;
    private ModelWeights weights;
    private ModelWeights teacher;
    private Gradients grads;
    private ConsistencyObjective objective;
    private Batch data;
    private final List<Tensor> adamState = new ArrayList<>();
    private final List<String> keys = new ArrayList<>();
    private long step;
    private float lastLoss;

    @Setup(Level.Trial)
    public void setUp() {
        TimingPreconditions.requireGpu("FacmStepBenchmark");
        TimingPreconditions.requireAsynchronousLaunches("FacmStepBenchmark");
        be = CudaBackend.open(0);
        ModelConfig c = Presets.get(model);
        weights = ModelWeights.philox(c, be, 1);
        teacher = ModelWeights.philox(c, be, 2);
        grads = new Gradients(weights);
        for (ParameterTable.Entry e : weights.table().entries()) {
            if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                keys.add(e.key());
                adamState.add(be.zeros(DType.F32, e.shape()));
                adamState.add(be.zeros(DType.F32, e.shape()));
            }
        }
        GemmPrecision p = precision.equals("bf16") ? GemmPrecision.BF16 : GemmPrecision.FP32;
        objective = new ConsistencyObjective(7, p, ConsistencyObjective.Options.defaults(
                ConsistencyObjective.Kind.FACM), teacher);
        int n = batch * c.inChannels() * c.inputSize() * c.inputSize();
        float[] images = new float[n];
        for (int i = 0; i < n; i++) {
            images[i] = Philox.normal(3, i);
        }
        int[] labels = new int[batch];
        for (int i = 0; i < batch; i++) {
            labels[i] = i % c.numClasses();
        }
        data = new Batch(images, new int[] {batch, c.inChannels(), c.inputSize(), c.inputSize()}, labels, batch);
        be.synchronize();
        System.out.println("\nFacmStepBenchmark: " + c.summary() + " on " + be.describe() + ", batch " + batch + ", "
                + precision + ", FACM objective with a teacher + AdamW");
    }

    @Benchmark
    public void facmStep() {
        grads.zero();
        step++;
        lastLoss = objective.lossAndGradients(weights, grads, data, step);
        TrainingOps ops = be.training();
        for (int i = 0; i < keys.size(); i++) {
            String key = keys.get(i);
            ops.adamw(weights.get(key), grads.get(key), adamState.get(2 * i), adamState.get(2 * i + 1), 1e-4f, 0.9f,
                    0.999f, 1e-8f, 0f, (int) step, 1f);
        }
        be.synchronize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ArenaStats s = be.cudaDevice().arena().stats();
        System.out.printf("%nFacmStepBenchmark %s batch %d %s: last loss %.4f after %d steps, arena peak in use "
                + "%.2f GiB (reserved %.2f GiB)%n", model, batch, precision, lastLoss, step,
                s.peakInUseBytes() / (double) (1L << 30), s.reservedBytes() / (double) (1L << 30));
        for (Tensor t : adamState) {
            t.close();
        }
        adamState.clear();
        keys.clear();
        grads.close();
        teacher.close();
        weights.close();
        be.close();
    }
}
