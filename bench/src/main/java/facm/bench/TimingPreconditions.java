package facm.bench;

import facm.cuda.Cuda;

/** Checks that make a GPU timing mean what it says; every benchmark's setup calls them. */
final class TimingPreconditions {
    private TimingPreconditions() {
    }

    /**
     * With {@link Cuda#syncCheck()} on, every launch waits for the GPU, so a timing would measure round trips instead of
     * queued work. The tests turn it on; benchmarks must run without it.
     */
    static void requireAsynchronousLaunches(String benchmark) {
        if (Cuda.syncCheck()) {
            throw new IllegalStateException(benchmark + ": facm.cuda.syncCheck / FACM_CUDA_SYNC_CHECK is on, which"
                    + " synchronizes after every launch; run benchmarks without it");
        }
    }

    /** Fails with the driver's reason when there is no GPU, instead of a NullPointerException later. */
    static void requireGpu(String benchmark) {
        if (!Cuda.available()) {
            throw new IllegalStateException(benchmark + " needs a CUDA GPU: " + Cuda.unavailableReason());
        }
    }
}
