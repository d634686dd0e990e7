package facm.bench;

import facm.objectives.FlowMatchingObjective;
import facm.training.AdamW;
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
 * One stage-1 flow-matching training step on the GPU (the counterpart of tools/reference/train_step_bench.py):
 * upload the batch, draw t, ε and label dropout, forward with the tape, FM loss, backward into the gradient buffers
 * (zeroed first), and AdamW on every trainable tensor (lr 2e-4, betas (0.9, 0.95), no weight decay, no clipping, no
 * EMA, as the PyTorch script). Random (Philox) weights; each invocation ends with a stream synchronize.
 *
 * <p>Primary metric: steps/s; {@code samples} and {@code teraflop} as in
 * {@link FacmTrainStep} ({@link ModelFlops#FM_STEP_FORWARDS} forward-equivalents per sample), and the profiler's
 * GPU-time metrics with {@code -prof facm.bench.GpuTimeProfiler}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 4)
public class TrainStepBenchmark {
    static final TrainStepFixture.Settings SETTINGS = new TrainStepFixture.Settings(
            new AdamW.Options(2e-4f, 0.9f, 0.95f, 1e-8f, 0f), 0f, "none");

    @Param({"B/1", "XL/1"})
    public String model;

    @Param({"32"})
    public int batch;

    @Param({"bf16", "fp32"})
    public String precision;

    @Param({"cuda"})
    public String backend;

    private TrainStepFixture fixture;
    private FlowMatchingObjective objective;

    @Setup(Level.Trial)
    public void setUp() {
        fixture = new TrainStepFixture("TrainStepBenchmark", backend, model, batch, SETTINGS);
        objective = fixture.own(new FlowMatchingObjective(7, OneStepSampling.precision(precision),
                FlowMatchingObjective.Options.defaults()));
        fixture.ready("TrainStepBenchmark (" + precision + ", FM objective)", ModelFlops.FM_STEP_FORWARDS);
    }

    @Benchmark
    public void trainStep(SampleCounter counter) {
        fixture.step(objective, counter, ModelFlops.FM_STEP_FORWARDS);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (fixture != null) {
            fixture.report("TrainStepBenchmark " + precision);
            fixture.close();
        }
    }
}
