package facm.bench;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.Cuda;
import facm.tensor.Backend;

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

    /**
     * The backend a benchmark's {@code backend} parameter names: {@code cuda} (GPU 0, after both checks above) or
     * {@code cpu} (to try a harness on a machine without a GPU, with a tiny preset or shape).
     */
    static Backend open(String backend, String benchmark) {
        return switch (backend) {
            case "cuda" -> {
                requireGpu(benchmark);
                requireAsynchronousLaunches(benchmark);
                yield CudaBackend.open(0);
            }
            case "cpu" -> new CpuBackend();
            default -> throw new IllegalArgumentException(benchmark + " backend '" + backend + "': use cuda or cpu");
        };
    }
}
