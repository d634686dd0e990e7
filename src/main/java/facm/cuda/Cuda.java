package facm.cuda;

import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Process-wide CUDA driver state: loading JCuda's driver binding, {@code cuInit}, device count, and error naming.
 * JCuda's native library links against the driver's libcuda.so.1, so on a machine without an NVIDIA driver the
 * class fails to load; {@link #available()} turns that into a plain "no" with a reason instead of a crash.
 */
public final class Cuda {
    private static final Object LOCK = new Object();
    private static volatile boolean initialized;
    private static String unavailableReason;
    private static int deviceCount;

    private Cuda() {
    }

    private static void init() {
        if (initialized) {
            return;
        }
        synchronized (LOCK) {
            if (initialized) {
                return;
            }
            try {
                JCudaDriver.setExceptionsEnabled(false);
                int r = JCudaDriver.cuInit(0);
                if (r != CUresult.CUDA_SUCCESS) {
                    unavailableReason = "cuInit failed: " + CUresult.stringFor(r)
                            + (r == CUresult.CUDA_ERROR_NO_DEVICE ? " (no CUDA GPU visible)" : "");
                } else {
                    int[] n = new int[1];
                    r = JCudaDriver.cuDeviceGetCount(n);
                    if (r != CUresult.CUDA_SUCCESS) {
                        unavailableReason = "cuDeviceGetCount failed: " + CUresult.stringFor(r);
                    } else if (n[0] == 0) {
                        unavailableReason = "the CUDA driver reports no GPU";
                    } else {
                        deviceCount = n[0];
                    }
                }
            } catch (UnsatisfiedLinkError | NoClassDefFoundError | ExceptionInInitializerError e) {
                String msg = String.valueOf(e.getMessage());
                unavailableReason = "no NVIDIA driver on this machine (JCuda could not load libcuda.so.1: "
                        + firstLine(msg) + ")";
            }
            initialized = true;
        }
    }

    private static String firstLine(String s) {
        int nl = s.indexOf('\n');
        String l = nl < 0 ? s : s.substring(0, nl);
        return l.length() > 160 ? l.substring(0, 160) + "…" : l;
    }

    /** True when the driver loads and reports at least one GPU. */
    public static boolean available() {
        init();
        return deviceCount > 0;
    }

    /** Why {@link #available()} is false, or null when it is true. */
    public static String unavailableReason() {
        init();
        return unavailableReason;
    }

    public static int deviceCount() {
        init();
        return deviceCount;
    }

    /** Throws {@link CudaUnavailableException} with the reason when no GPU can be used. */
    public static void requireAvailable() {
        if (!available()) {
            throw new CudaUnavailableException("CUDA is not available: " + unavailableReason());
        }
    }

    /** Driver version as "13.0" (from cuDriverGetVersion). */
    public static String driverVersion() {
        requireAvailable();
        int[] v = new int[1];
        check(JCudaDriver.cuDriverGetVersion(v), "cuDriverGetVersion");
        return (v[0] / 1000) + "." + (v[0] % 1000) / 10;
    }

    public static void check(int cuResult, String call) {
        if (cuResult != CUresult.CUDA_SUCCESS) {
            throw new CudaException(call, cuResult);
        }
    }

    public static String errorName(int cuResult) {
        String s = CUresult.stringFor(cuResult);
        return s == null || s.startsWith("INVALID CUresult") ? "CUresult " + cuResult : s;
    }

    /**
     * True when every kernel launch is followed by a stream synchronize and an error check (system property
     * {@code facm.cuda.syncCheck=true} or environment {@code FACM_CUDA_SYNC_CHECK=1}). Tests turn it on so that an
     * asynchronous fault is reported at the kernel that caused it. Always false on a thread that is capturing a
     * {@link CudaGraph} (the check then happens when the graph is launched).
     */
    public static boolean syncCheck() {
        // While this thread captures a CUDA graph nothing runs, and a synchronize would invalidate the capture.
        return SyncCheck.enabled && !CaptureState.active();
    }

    /** Turns per-launch checking on or off for this process (tests). */
    public static void setSyncCheck(boolean on) {
        SyncCheck.enabled = on;
    }

    private static final class SyncCheck {
        static volatile boolean enabled = Boolean.getBoolean("facm.cuda.syncCheck")
                || "1".equals(System.getenv("FACM_CUDA_SYNC_CHECK"));
    }
}
