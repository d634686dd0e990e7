package facm.backend.cuda;

import facm.cuda.CudaTestSupport;
import facm.tensor.DType;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@code peakMemoryBytes} on CUDA: the device arena's peak of bytes in use, which counts whole size-class blocks
 * (2 MiB steps above 1 MiB, see facm.cuda.DeviceArena), and {@code resetPeakMemory} restarting it at what is in use.
 * Exact byte counts: the arena's bookkeeping is on the host and deterministic.
 */
@Tag("gpu")
class CudaPeakMemoryTest {
    private static final long LARGE_STEP = 2L << 20;

    private static long block(long bytes) {
        return (bytes + LARGE_STEP - 1) / LARGE_STEP * LARGE_STEP;
    }

    @Test
    void peakCoversKnownAllocationsAndResetsToWhatIsInUse() {
        try (CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels())) {
            gpu.synchronize();
            gpu.resetPeakMemory();
            long base = gpu.cudaDevice().arena().stats().inUseBytes();
            assertEquals(base, gpu.peakMemoryBytes(), "after a reset the peak is what is in use");

            long bytesA = 4L * (12_000_000 + 7);   // ~45.8 MiB of F32, not a multiple of the block step
            long bytesB = 2L * 3 * 1000 * 1001;    // ~5.7 MiB of BF16
            try (Tensor a = gpu.empty("peak_a", DType.F32, 12_000_007)) {
                assertEquals(base + block(bytesA), gpu.peakMemoryBytes(), "one tensor of " + bytesA + " bytes");
                try (Tensor b = gpu.empty("peak_b", DType.BF16, 3, 1000, 1001)) {
                    assertEquals(base + block(bytesA) + block(bytesB), gpu.peakMemoryBytes(), "both tensors");
                }
                assertEquals(base + block(bytesA) + block(bytesB), gpu.peakMemoryBytes(),
                        "freeing does not lower the peak");
                gpu.resetPeakMemory();
                assertEquals(base + block(bytesA), gpu.peakMemoryBytes(), "reset: the peak is what is in use");
            }
            gpu.resetPeakMemory();
            assertEquals(base, gpu.peakMemoryBytes(), "everything freed again");
        }
    }
}
