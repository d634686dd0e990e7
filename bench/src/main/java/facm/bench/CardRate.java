package facm.bench;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaEvent;
import facm.cuda.CudaStream;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;

import java.util.Arrays;
import java.util.Locale;

/**
 * The card's bf16 matrix rate, measured in the benchmark's own JVM so a "fraction of peak" compares numbers of the
 * same card, clocks and driver: an 8192³ product (bf16 inputs and output, fp32 accumulation, cuBLASLt through
 * {@link Backend#gemm}), 2 warm-up products, then the median of 5 rounds of 4 products timed with CUDA events
 * (FLOP = 2·8192³ per product). About 60 ms and 384 MiB, freed again before the benchmark's own setup.
 *
 * <p>The system property {@code facm.bench.bf16Tflops} (TFLOP/s) replaces the measurement, e.g. with PyTorch's number
 * taken just before. The CPU backend has no such rate (0: the fraction is then not reported).
 */
final class CardRate {
    static final String PROPERTY = "facm.bench.bf16Tflops";
    private static final int SIZE = 8192;
    private static final int ROUNDS = 5;
    private static final int PRODUCTS_PER_ROUND = 4;
    private static double cached = -1;

    private CardRate() {
    }

    /** TFLOP/s of the bf16 product on this backend's card; measured once per JVM. */
    static synchronized double bf16Tflops(Backend backend) {
        if (cached >= 0) {
            return cached;
        }
        String given = System.getProperty(PROPERTY);
        if (given != null && !given.isBlank()) {
            try {
                cached = Double.parseDouble(given.trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(PROPERTY + "='" + given + "' is not a number of TFLOP/s", e);
            }
        } else if (backend instanceof CudaBackend cuda) {
            cached = measure(cuda);
        } else {
            cached = 0;
        }
        System.out.printf(Locale.ROOT, "%ncard bf16 rate: %.1f TFLOP/s (%s)%n", cached,
                given != null ? "from -D" + PROPERTY : backend instanceof CudaBackend ? "measured: 8192³ bf16 GEMM, "
                        + "median of " + ROUNDS + " rounds" : "CPU backend: none");
        return cached;
    }

    private static double measure(CudaBackend be) {
        CudaStream stream = be.cudaDevice().stream();
        try (Tensor a = randomBf16(be, "rate.a", 11);
             Tensor b = randomBf16(be, "rate.b", 12);
             Tensor out = be.empty("rate.out", DType.BF16, SIZE, SIZE);
             CudaEvent start = CudaEvent.create(be.cudaDevice());
             CudaEvent stop = CudaEvent.create(be.cudaDevice())) {
            for (int i = 0; i < 2; i++) {
                be.gemm(a, false, b, true, out, 1f, 0f, GemmPrecision.BF16);
            }
            double[] ms = new double[ROUNDS];
            for (int r = 0; r < ROUNDS; r++) {
                start.record(stream);
                for (int i = 0; i < PRODUCTS_PER_ROUND; i++) {
                    be.gemm(a, false, b, true, out, 1f, 0f, GemmPrecision.BF16);
                }
                stop.record(stream);
                ms[r] = stop.elapsedMillisSince(start) / PRODUCTS_PER_ROUND;
            }
            Arrays.sort(ms);
            double median = ms[ROUNDS / 2];
            return 2.0 * SIZE * SIZE * (double) SIZE / (median / 1e3) / 1e12;
        } finally {
            be.synchronize();
            be.cudaDevice().arena().trim();
        }
    }

    private static Tensor randomBf16(Backend be, String name, long seed) {
        try (Tensor f32 = be.empty(name, DType.F32, SIZE, SIZE)) {
            be.randomNormal(f32, seed, 0);
            Tensor out = be.empty(name, DType.BF16, SIZE, SIZE);
            be.convert(f32, out);
            return out;
        }
    }
}
