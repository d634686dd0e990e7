package facm.training;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The device-loss step on CUDA (kernels/step_inputs.cu, step_log.cu, the device update) and its CUDA graph: 5
 * captured-path steps (eager, warm-up in the pool, capture + replay, 2 replays: 3 graph launches) equal 5 eager device
 * steps bit for bit, and the eager device-loss run
 * equals the host-input run on the same GPU (its times and coefficients come from the device's fp64 library instead
 * of Java's; they round to the same floats but for ties of about 2^-28 per value, far from this test's few dozen).
 */
@Tag("gpu")
class DeviceLossGpuTest {

    @Test
    void threeCapturedStepsEqualThreeEagerSteps(@TempDir Path dir) throws IOException {
        CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        new DeviceLossRuns().assertCapturedMatchesEager(gpu, dir, 5);
    }

    @Test
    void deviceLossRunEqualsTheHostRunOnTheGpu(@TempDir Path dir) throws IOException {
        CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        new DeviceLossRuns().assertDeviceLossMatchesHostStep(gpu, dir, 5);
    }
}
