package facm.training;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The device-step update on CUDA (kernels/adamw.cu step_control_f32, adamw_controlled_f32, ema_controlled_f32,
 * step_counter_advance): a run with a skipped step and clipping is bit-identical to the host-decided run on the same
 * GPU (weights, moments, EMAs, counters, metrics).
 */
@Tag("gpu")
class DeviceStepGpuTest {

    @Test
    void deviceStepRunIsBitIdenticalToTheHostStepRun(@TempDir Path dir) throws IOException {
        CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        new DeviceStepRuns().assertDeviceStepMatchesHostStep(gpu, dir, 5);
    }
}
