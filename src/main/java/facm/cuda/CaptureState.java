package facm.cuda;

/**
 * Which graph, if any, the calling thread is capturing. Captures use CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, so only
 * the capturing thread is restricted; this marker lets our own code refuse what must not happen during a capture
 * (a synchronize, a driver allocation, a per-launch sync check) with a clear error instead of invalidating the
 * capture deep inside the driver.
 */
final class CaptureState {
    private static final ThreadLocal<String> CAPTURING = new ThreadLocal<>();

    private CaptureState() {
    }

    static boolean active() {
        return CAPTURING.get() != null;
    }

    /** The name of the graph being captured by this thread, or null. */
    static String graphName() {
        return CAPTURING.get();
    }

    static void enter(String graphName) {
        if (CAPTURING.get() != null) {
            throw new IllegalStateException("cannot capture graph '" + graphName + "': this thread is already capturing '"
                    + CAPTURING.get() + "' (nested captures are not supported)");
        }
        CAPTURING.set(graphName);
    }

    static void exit() {
        CAPTURING.remove();
    }

    /** Throws "not capturable: {@code op}" when this thread is capturing. */
    static void refuse(String op) {
        String g = CAPTURING.get();
        if (g != null) {
            throw new CudaException("not capturable: " + op + " inside the capture of CUDA graph '" + g
                    + "' (a captured region may not wait for the device, copy to or from pageable host memory, or "
                    + "allocate from the driver)");
        }
    }
}
