package facm.training;

import facm.model.ModelWeights;
import facm.objectives.ConsistencyObjective;
import facm.tensor.Backend;
import facm.tensor.GemmPrecision;
import facm.tensor.TrainingOps;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Runs of the FACM objective (with a teacher and guidance) on a micro model with the host path and with the
 * device-loss step ({@code --cuda-graph-step}: device inputs, loss and norm in the device step log, read at log and
 * checkpoint steps), compared bit for bit: checkpoint tensors, counters and metrics lines, also across a resume.
 * Shared by the CPU test and its gpu-tagged twin.
 */
final class DeviceLossRuns {
    private final PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());

    Trainer.Result run(Backend be, TrainOptions o, boolean deviceStep, boolean resume) throws IOException {
        return run(be, o, deviceStep, false, resume);
    }

    /** As above; {@code capture}: the device step as a CUDA graph on CUDA (eager on the CPU). */
    Trainer.Result run(Backend be, TrainOptions o, boolean deviceStep, boolean capture, boolean resume)
            throws IOException {
        TrainingOps ops = be.training();
        ConsistencyObjective.Options facm = ConsistencyObjective.Options.defaults(ConsistencyObjective.Kind.FACM);
        try (ModelWeights w = TrainingTestModels.oneHeadWeights(be, 3);
             ModelWeights teacher = TrainingTestModels.oneHeadWeights(be, 4);
             ConsistencyObjective objective = new ConsistencyObjective(o.seed(), GemmPrecision.FP32, facm, teacher);
             Trainer t = new Trainer(o, w, objective, ops, Path.of(o.out()), quiet)) {
            if (resume) {
                t.resume(Trainer.lastCheckpoint(Path.of(o.out())));
            }
            if (deviceStep) {
                t.useDeviceStep(capture);
            }
            return t.run(new FakeBatches(w.config(), 4, o.seed(), t.dataPosition()), false);
        }
    }

    /** Host path vs device-loss path over {@code steps} steps, whole and as a run resumed at a checkpoint. */
    void assertDeviceLossMatchesHostStep(Backend be, Path dir, int steps) throws IOException {
        Path host = dir.resolve("host"), device = dir.resolve("device"), resumed = dir.resolve("resumed");
        Trainer.Result a = run(be, DeviceStepRuns.options(host, steps, 3), false, false);
        Trainer.Result b = run(be, DeviceStepRuns.options(device, steps, 3), true, false);
        assertEquals(a.step(), b.step());
        assertEquals(a.skippedSteps(), b.skippedSteps());
        DeviceStepRuns.assertSameRun(host, device);
        run(be, DeviceStepRuns.options(resumed, 3, 3), true, false);
        run(be, DeviceStepRuns.options(resumed, steps, 3), true, true);
        DeviceStepRuns.assertSameLastCheckpoint(host, resumed); // its metrics have a line at the end of the first part
    }

    /**
     * {@code steps} device-loss steps eagerly vs the same steps with the step captured (on CUDA: step 1 eager, step 2
     * the warm-up in the graph pool, step 3 the capture and its replay, then replays): identical bits.
     */
    void assertCapturedMatchesEager(Backend be, Path dir, int steps) throws IOException {
        Path eager = dir.resolve("eager"), captured = dir.resolve("captured");
        run(be, DeviceStepRuns.options(eager, steps, 0), true, false, false);
        run(be, DeviceStepRuns.options(captured, steps, 0), true, true, false);
        DeviceStepRuns.assertSameRun(eager, captured);
    }
}
