package facm.bench;

import facm.autograd.Gradients;
import facm.backend.cuda.CudaBackend;
import facm.cuda.ArenaStats;
import facm.data.Batch;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.model.Presets;
import facm.objectives.FlowMatchingObjective;
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
 * One stage-1 flow-matching training step on the GPU (the counterpart of tools/reference/train_step_bench.py):
 * upload the batch, draw t, ε and label dropout, forward with the tape, FM loss, backward into the gradient buffers
 * (zeroed first), and AdamW on every trainable tensor through {@link TrainingOps#adamw} (lr 2e-4, betas (0.9, 0.95),
 * no weight decay, no clipping, no EMA). Random (Philox) weights; each invocation ends with a stream synchronize.
 * Score: milliseconds per step; samples/s = batch / (ms / 1000). The peak arena use is printed at the end.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 4)
public class TrainStepBenchmark {

    @Param({"B/1", "XL/1"})
    public String model;

    @Param({"32"})
    public int batch;

    @Param({"bf16", "fp32"})
    public String precision;

    private CudaBackend be;
    private ModelWeights weights;
    private Gradients grads;
    private FlowMatchingObjective objective;
    private Batch data;
    private final List<Tensor> adamState = new ArrayList<>();
    private final List<String> keys = new ArrayList<>();
    private long step;
    private float lastLoss;

    @Setup(Level.Trial)
    public void setUp() {
        TimingPreconditions.requireGpu("TrainStepBenchmark");
        TimingPreconditions.requireAsynchronousLaunches("TrainStepBenchmark");
        be = CudaBackend.open(0);
        ModelConfig c = Presets.get(model);
        weights = ModelWeights.philox(c, be, 1);
        grads = new Gradients(weights);
        for (ParameterTable.Entry e : weights.table().entries()) {
            if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                keys.add(e.key());
                adamState.add(be.zeros(DType.F32, e.shape()));
                adamState.add(be.zeros(DType.F32, e.shape()));
            }
        }
        GemmPrecision p = precision.equals("bf16") ? GemmPrecision.BF16 : GemmPrecision.FP32;
        objective = new FlowMatchingObjective(7, p, FlowMatchingObjective.Options.defaults());
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
        System.out.println("\nTrainStepBenchmark: " + c.summary() + " on " + be.describe() + ", batch " + batch + ", "
                + precision + ", FM objective + AdamW");
    }

    @Benchmark
    public void trainStep() {
        grads.zero();
        step++;
        lastLoss = objective.lossAndGradients(weights, grads, data, step);
        TrainingOps ops = be.training();
        for (int i = 0; i < keys.size(); i++) {
            String key = keys.get(i);
            ops.adamw(weights.get(key), grads.get(key), adamState.get(2 * i), adamState.get(2 * i + 1), 2e-4f, 0.9f,
                    0.95f, 1e-8f, 0f, (int) step, 1f);
        }
        be.synchronize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        ArenaStats s = be.cudaDevice().arena().stats();
        System.out.printf("%nTrainStepBenchmark %s batch %d %s: last loss %.4f after %d steps, arena peak in use "
                + "%.2f GiB (reserved %.2f GiB)%n", model, batch, precision, lastLoss, step,
                s.peakInUseBytes() / (double) (1L << 30), s.reservedBytes() / (double) (1L << 30));
        for (Tensor t : adamState) {
            t.close();
        }
        adamState.clear();
        keys.clear();
        grads.close();
        weights.close();
        be.close();
    }
}
