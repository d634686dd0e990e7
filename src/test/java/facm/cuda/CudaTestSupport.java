package facm.cuda;

import org.junit.jupiter.api.Assumptions;

/**
 * Shared GPU for the {@code gpu}-tagged tests. Without a GPU (or without built kernels) the calling test is aborted,
 * which JUnit reports as skipped with the reason, so CI on a CPU-only machine shows why nothing ran.
 */
public final class CudaTestSupport {
    private static CudaDevice device;
    private static String skipReason;

    private CudaTestSupport() {
    }

    public static synchronized CudaDevice device() {
        if (device == null && skipReason == null) {
            if (!Cuda.available()) {
                skipReason = "no CUDA GPU: " + Cuda.unavailableReason();
            } else {
                Cuda.setSyncCheck(true);
                device = CudaDevice.open(0);
            }
        }
        if (device == null) {
            Assumptions.abort(skipReason);
        }
        device.makeCurrent();
        return device;
    }

    /** Like {@link #device()} but also requires the kernels to be in the jar. */
    public static synchronized CudaDevice deviceWithKernels() {
        CudaDevice d = device();
        KernelBuildInfo info = KernelBuildInfo.read();
        if (!info.built()) {
            Assumptions.abort(info.notBuiltMessage());
        }
        return d;
    }
}
