package facm.bench;

import facm.model.ModelWeights;
import facm.objectives.ConsistencyObjective;
import facm.training.AdamW;
import facm.training.DeviceTrainStep;
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
 * One FACM distillation step (facm-spec.md §5.2; the counterpart of tools/reference/facm_step_bench.py), done as the
 * trainer does it: upload the batch, draw t and ε, the guided teacher velocity (two teacher forwards, CFG 1.75 on
 * [0.125, 1]), the FM anchor at 2 − t (forward + backward), the JVP pass (primal with tape + tangent) and its
 * backward, the consistency loss, the gradient norm and clipping at 1.0, AdamW (lr 1e-4, betas (0.9, 0.999), no
 * weight decay) and one EMA (classic 0.9999), then a synchronize. Random (Philox) student and teacher weights.
 *
 * <p>Primary metric: steps/s; {@code samples}: samples/s of wall time; {@code teraflop}: TFLOP/s of wall time with
 * {@link ModelFlops#FACM_STEP_FORWARDS} forward-equivalents per sample. With {@code -prof facm.bench.GpuTimeProfiler}
 * also the CUDA-event time per step (median), samples/s and TFLOP/s from it, the fraction of the card's measured bf16
 * rate and {@code mem.peakGiB}: the device's peak bytes in use (teacher, student, gradients, AdamW state, EMA and the
 * step's activations) since the end of the setup. {@code -p backend=cpu -p model=tiny -p batch=2} tries the harness
 * without a GPU.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 3)
public class FacmTrainStep {
    static final TrainStepFixture.Settings SETTINGS = new TrainStepFixture.Settings(
            new AdamW.Options(1e-4f, 0.9f, 0.999f, 1e-8f, 0f), 1f, "classic:0.9999");

    @Param({"B/1", "XL/1"})
    public String model;

    @Param({"16", "32"})
    public int batch;

    @Param({"bf16"})
    public String precision;

    @Param({"cuda"})
    public String backend;

    /**
     * host: the trainer's default step (host-drawn inputs, loss and norm read back every step); device: {@code train
     * --cuda-graph-step}'s device-side step run eagerly; graph: the same step captured once and replayed as a CUDA
     * graph.
     */
    @Param({"host"})
    public String step;

    private TrainStepFixture fixture;
    private ConsistencyObjective objective;
    private DeviceTrainStep deviceStep;

    @Setup(Level.Trial)
    public void setUp() {
        fixture = new TrainStepFixture("FacmTrainStep", backend, model, batch, SETTINGS);
        ModelWeights teacher = fixture.own(ModelWeights.philox(fixture.config, fixture.backend, 2));
        objective = fixture.own(new ConsistencyObjective(7, OneStepSampling.precision(precision),
                ConsistencyObjective.Options.defaults(ConsistencyObjective.Kind.FACM), teacher));
        deviceStep = switch (step) {
            case "host" -> null;
            case "device", "graph" -> fixture.deviceStep(objective, step.equals("graph"));
            default -> throw new IllegalArgumentException("FacmTrainStep: step must be host, device or graph, got "
                    + step);
        };
        fixture.ready("FacmTrainStep (" + precision + ", FACM objective with a teacher, " + step + " step)",
                ModelFlops.FACM_STEP_FORWARDS);
    }

    @Benchmark
    public void facmStep(SampleCounter counter) {
        if (deviceStep == null) {
            fixture.step(objective, counter, ModelFlops.FACM_STEP_FORWARDS);
        } else {
            fixture.step(deviceStep, counter, ModelFlops.FACM_STEP_FORWARDS);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (fixture != null) {
            if (deviceStep != null) {
                fixture.finish(deviceStep);
            }
            fixture.report("FacmTrainStep " + precision);
            fixture.close();
        }
    }
}
