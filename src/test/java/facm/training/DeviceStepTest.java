package facm.training;

import facm.backend.cpu.CpuBackend;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The device-step forms on the CPU ({@code train --cuda-graph-step}): the control scalars equal the host decision, the
 * controlled AdamW and EMA updates equal the host updates bit for bit, skipped steps touch nothing, and whole runs
 * (with a skipped step, clipping, a checkpoint and a resume) are bit-identical to the default path.
 */
class DeviceStepTest {
    private final Backend be = new CpuBackend(2);
    private final TrainingOps ops = be.training();

    private Tensor scalar(float v) {
        return be.upload("s", new float[] {v}, 1);
    }

    @Test
    void stepControlIsTheHostClipFactorAndSkipDecision() {
        float[][] cases = {{4f, 1.5f, 0.05f}, {1e-8f, 0.3f, 10f}, {9f, 0.2f, 0f}, {Float.NaN, 1f, 1f},
                {4f, Float.POSITIVE_INFINITY, 1f}, {Float.POSITIVE_INFINITY, 1f, 1f}};
        for (float[] c : cases) {
            try (Tensor sq = scalar(c[0]); Tensor loss = scalar(c[1]);
                 Tensor control = be.zeros(DType.F32, TrainingOps.CONTROL_SIZE)) {
                ops.stepControl(sq, loss, c[2], control);
                double norm = Math.sqrt(c[0]);
                float[] got = be.download(control);
                boolean skip = !Float.isFinite(c[1]) || !Double.isFinite(norm);
                assertEquals(skip ? 1f : 0f, got[TrainingOps.CONTROL_SKIP], "skip for " + java.util.Arrays.toString(c));
                if (!skip) {
                    assertEquals(GradientNorm.clipFactor(norm, c[2]), got[TrainingOps.CONTROL_CLIP]);
                }
            }
        }
    }

    @Test
    void controlledAdamwAndCounterMatchTheHostFormOrSkip() {
        float[] p0 = {0.5f, -1.25f, 3f, 1e-3f, -7f}, g = {0.1f, -0.2f, 0.3f, 4f, -1e-4f};
        float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
        AdamW.Options opt = new AdamW.Options(lr, b1, b2, eps, wd);
        double[] table = new double[2 * 4];
        for (int k = 0; k < 4; k++) {
            table[2 * k] = 1.0 - Math.pow(opt.beta1(), k);
            table[2 * k + 1] = 1.0 - Math.pow(opt.beta2(), k);
        }
        try (Tensor pHost = be.upload("p", p0, 5); Tensor mHost = be.zeros(DType.F32, 5);
             Tensor vHost = be.zeros(DType.F32, 5); Tensor pDev = be.upload("p", p0, 5);
             Tensor mDev = be.zeros(DType.F32, 5); Tensor vDev = be.zeros(DType.F32, 5);
             Tensor grad = be.upload("g", g, 5); Tensor bias = Fp64Table.upload(be, "bias", table);
             Tensor counter = be.upload("k", new int[] {0}, 1)) {
            float[][] controls = {{0.75f, 0f}, {0.4f, 1f}, {1f, 0f}};
            int hostStep = 0;
            for (float[] c : controls) {
                try (Tensor control = be.upload("control", c, 2)) {
                    ops.adamw(pDev, grad, mDev, vDev, lr, b1, b2, eps, wd, bias, counter, control);
                    ops.advanceCounter(counter, control);
                }
                if (c[1] == 0f) {
                    hostStep++;
                    ops.adamw(pHost, grad, mHost, vHost, lr, b1, b2, eps, wd, hostStep, c[0]);
                }
                assertEquals(hostStep, be.downloadInts(counter)[0]);
                assertArrayEquals(be.download(pHost), be.download(pDev));
                assertArrayEquals(be.download(mHost), be.download(mDev));
                assertArrayEquals(be.download(vHost), be.download(vDev));
            }
        }
    }

    @Test
    void wholeRunsOnTheDeviceStepAreBitIdenticalToTheHostStep(@TempDir Path dir) throws IOException {
        new DeviceStepRuns().assertDeviceStepMatchesHostStep(be, dir, 5);
    }

    @Test
    void deviceStepRunResumesIntoTheSameRun(@TempDir Path dir) throws IOException {
        DeviceStepRuns runs = new DeviceStepRuns();
        Path full = dir.resolve("full"), parts = dir.resolve("parts");
        runs.run(be, DeviceStepRuns.options(full, 6, 3), true, Set.of(4L), false);
        runs.run(be, DeviceStepRuns.options(parts, 3, 3), true, Set.of(4L), false);
        runs.run(be, DeviceStepRuns.options(parts, 6, 3), true, Set.of(4L), true);
        // The split run ends its first part with an extra metrics line at step 3, so only the state is compared.
        DeviceStepRuns.assertSameLastCheckpoint(full, parts);
    }
}
