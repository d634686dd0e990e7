package facm.port;

import facm.backend.cuda.CudaBackend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;

/**
 * The card's own reference rates, measured in this process so the port check rates each family against what this
 * GPU (with its clocks, driver and power limit) really does: the copy bandwidth of a large device-to-device copy
 * (bytes read plus bytes written, the same accounting as the bandwidth-bound families) and the rate of an n³ bf16
 * GEMM through the backend (cuBLASLt, bf16 in and out, fp32 accumulation).
 *
 * @param copyBytesPerSecond read + written bytes per second of {@code Backend.copy}
 * @param gemmFlopsPerSecond 2n³ per second of the bf16 GEMM
 * @param copyBytes          bytes per copy buffer measured
 * @param gemmSize           n of the GEMM
 */
public record CardRates(double copyBytesPerSecond, double gemmFlopsPerSecond, long copyBytes, int gemmSize) {

    public static CardRates measure(CudaBackend gpu, MicroBenchmark bench, long copyBytes, int gemmSize) {
        int n = (int) Math.min(Integer.MAX_VALUE - 8L, copyBytes / Float.BYTES);
        double copyMs;
        try (Tensor src = gpu.empty("copy-src", DType.F32, n); Tensor dst = gpu.empty("copy-dst", DType.F32, n)) {
            gpu.fill(src, 1f);
            copyMs = bench.medianMillis(() -> gpu.copy(src, dst));
        }
        double gemmMs;
        try (Tensor a = gpu.empty("gemm-a", DType.BF16, gemmSize, gemmSize);
             Tensor b = gpu.empty("gemm-b", DType.BF16, gemmSize, gemmSize);
             Tensor c = gpu.empty("gemm-c", DType.BF16, gemmSize, gemmSize)) {
            // Small values: the rate does not depend on them, but NaN or Inf inputs could take slower paths.
            gpu.fill(a, 0.01f);
            gpu.fill(b, 0.01f);
            gemmMs = bench.medianMillis(() -> gpu.gemm(a, false, b, false, c, 1f, 0f, GemmPrecision.BF16));
        }
        double bytes = 2.0 * n * Float.BYTES;
        double flops = 2.0 * gemmSize * gemmSize * (double) gemmSize;
        return new CardRates(bytes / (copyMs * 1e-3), flops / (gemmMs * 1e-3), (long) n * Float.BYTES, gemmSize);
    }

    public String describe() {
        return String.format(java.util.Locale.ROOT, "copy %.0f GB/s (2 x %d MiB device-to-device), bf16 GEMM %.1f TFLOP/s (%d^3)",
                copyBytesPerSecond / 1e9, copyBytes >> 20, gemmFlopsPerSecond / 1e12, gemmSize);
    }
}
