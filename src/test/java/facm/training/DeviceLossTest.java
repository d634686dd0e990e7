package facm.training;

import facm.backend.cpu.CpuBackend;
import facm.tensor.Backend;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The device-loss step on the CPU reference: whole runs and the step log's replay (skips included). */
class DeviceLossTest {

    @Test
    void deviceLossRunIsBitIdenticalToTheHostRun(@TempDir Path dir) throws IOException {
        new DeviceLossRuns().assertDeviceLossMatchesHostStep(new CpuBackend(), dir, 5);
    }

    @Test
    void capturedPathRunsEagerlyOnTheCpuWithTheSameBits(@TempDir Path dir) throws IOException {
        new DeviceLossRuns().assertCapturedMatchesEager(new CpuBackend(), dir, 3);
    }

    @Test
    void captureRefusesAnObjectiveWithHostInputs(@TempDir Path dir) {
        Backend be = new CpuBackend();
        TrainOptions o = DeviceStepRuns.options(dir, 2, 0);
        try (facm.model.ModelWeights w = TrainingTestModels.weights(be, 3);
             Trainer t = new Trainer(o, w, new QuadraticObjective(be.training(), o.seed(), java.util.Set.of(),
                     s -> { }), be.training(), dir, new PrintStream(OutputStream.nullOutputStream()))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> t.useDeviceStep(true));
            assertTrue(e.getMessage().contains("not capturable"), e.getMessage());
        }
    }

    @Test
    void stepLogReplaysRowsInOrderAndReportsSkips(@TempDir Path dir) throws IOException {
        Backend be = new CpuBackend();
        TrainingOps ops = be.training();
        try (DeviceStepLog stepLog = new DeviceStepLog(be, 2, List.of("a", "b"));
             Tensor loss = be.zeros(facm.tensor.DType.F32, 1);
             Tensor sumSq = be.upload("sumsq", new float[] {4f}, 1);
             Tensor control = be.upload("control", new float[] {1f, 0f}, TrainingOps.CONTROL_SIZE);
             Tensor skipControl = be.upload("control", new float[] {1f, 1f}, TrainingOps.CONTROL_SIZE);
             Tensor fm = be.upload("fm", new float[] {1f, 2f}, 2);
             Tensor cm = be.upload("cm", new float[] {3f, Float.NaN}, 2);
             Tensor cmOk = be.upload("cm", new float[] {3f, 5f}, 2);
             MetricsLog log = new MetricsLog(dir.resolve("m.jsonl"), 0, 10, 2, 1e-3f,
                     new PrintStream(OutputStream.nullOutputStream()))) {
            ops.stepLoss(fm, cmOk, loss, stepLog.rows(), stepLog.count());
            assertEquals(5.5f, be.download(loss)[0]);
            ops.stepLogEnd(sumSq, control, stepLog.rows(), stepLog.count());
            stepLog.rowQueued();
            ops.stepLoss(fm, cm, loss, stepLog.rows(), stepLog.count());
            ops.stepLogEnd(sumSq, skipControl, stepLog.rows(), stepLog.count());
            stepLog.rowQueued();
            assertThrows(IllegalStateException.class, stepLog::rowQueued);
            List<String> skips = new ArrayList<>();
            stepLog.drain(log, 7, (n, l, norm) -> skips.add(n + ":" + l + ":" + norm));
            assertEquals(List.of("7:NaN:NaN"), skips);
            assertEquals(1.5, log.pendingState().get("extra_sums").getAsJsonObject().get("a").getAsDouble());
            assertEquals(4.0, log.pendingState().get("extra_sums").getAsJsonObject().get("b").getAsDouble());
            assertEquals(2.0, log.pendingState().get("norm_sum").getAsDouble());
            assertEquals(0, be.downloadInts(stepLog.count())[0]);
        }
    }
}
