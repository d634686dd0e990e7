package facm.backend.cuda;

import facm.cuda.Cuda;
import facm.cuda.CudaDevice;
import facm.cuda.CudaEvent;

/**
 * Milliseconds per run of some queued GPU work, from CUDA events around {@code repeats} runs after one warm-up run,
 * with the per-launch sync check off while timing (it would serialize the launches). For the timing report tests.
 */
final class GpuTiming {
    private GpuTiming() {
    }

    static double millis(CudaDevice device, int repeats, Runnable work) {
        work.run();
        device.synchronize();
        boolean syncCheck = Cuda.syncCheck();
        Cuda.setSyncCheck(false);
        try (CudaEvent start = CudaEvent.create(device); CudaEvent end = CudaEvent.create(device)) {
            start.record(device.stream());
            for (int i = 0; i < repeats; i++) {
                work.run();
            }
            end.record(device.stream());
            return end.elapsedMillisSince(start) / repeats;
        } finally {
            Cuda.setSyncCheck(syncCheck);
        }
    }
}
