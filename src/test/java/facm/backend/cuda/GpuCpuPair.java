package facm.backend.cuda;

import facm.backend.cpu.CpuBackend;
import facm.cuda.CudaTestSupport;
import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Test fixture: the CUDA backend on the shared test GPU next to the CPU reference, tensors made on both from the same
 * host data, and comparisons that report the first offending element. {@link #open()} skips the calling test class
 * (JUnit "aborted") when there is no GPU or the jar has no kernels.
 */
final class GpuCpuPair implements AutoCloseable {
    final CudaBackend gpu;
    final CpuBackend cpu;
    private final List<Tensor> made = new ArrayList<>();

    private GpuCpuPair(CudaBackend gpu, CpuBackend cpu) {
        this.gpu = gpu;
        this.cpu = cpu;
    }

    static GpuCpuPair open() {
        return new GpuCpuPair(CudaBackend.on(CudaTestSupport.deviceWithKernels()), new CpuBackend());
    }

    /** The same tensor on both backends. */
    record Both(Tensor gpu, Tensor cpu) {
    }

    Both upload(String name, float[] data, int... shape) {
        return track(new Both(gpu.upload(name, data, shape), cpu.upload(name, data, shape)));
    }

    Both upload(String name, int[] data, int... shape) {
        return track(new Both(gpu.upload(name, data, shape), cpu.upload(name, data, shape)));
    }

    Both uploadBf16(String name, short[] bits, int... shape) {
        return track(new Both(gpu.uploadBf16(name, bits, shape), cpu.uploadBf16(name, bits, shape)));
    }

    /** Outputs filled with NaN (floating) or a marker value (I32), so an element a kernel skips cannot pass. */
    Both poisoned(String name, DType dtype, int... shape) {
        if (dtype == DType.I32) {
            int[] marker = new int[numel(shape)];
            java.util.Arrays.fill(marker, 0x7EADBEEF);
            return upload(name, marker, shape);
        }
        Both b = track(new Both(gpu.empty(name, dtype, shape), cpu.empty(name, dtype, shape)));
        gpu.fill(b.gpu, Float.NaN);
        cpu.fill(b.cpu, Float.NaN);
        return b;
    }

    private Both track(Both b) {
        made.add(b.gpu);
        made.add(b.cpu);
        return b;
    }

    /** Closes every tensor made through this fixture so far (call after each test: large tensors add up). */
    void closeTensors() {
        for (Tensor t : made) {
            t.close();
        }
        made.clear();
    }

    @Override
    public void close() {
        closeTensors();
        cpu.close();
        gpu.close();
    }

    /** The GPU side's values (BF16 widened exactly, as download does). */
    float[] gpuValues(Both t) {
        return gpu.download(t.gpu);
    }

    /** The CPU side's values (BF16 widened exactly, as download does). */
    float[] cpuValues(Both t) {
        return cpu.download(t.cpu);
    }

    // ---------------------------------------------------------------- data

    /** n values uniform in [lo, hi), none exactly zero. */
    static float[] values(long seed, int n, float lo, float hi) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            float x;
            do {
                x = (float) (lo + (hi - lo) * r.nextDouble());
            } while (x == 0f);
            v[i] = x;
        }
        return v;
    }

    /**
     * bf16 bit patterns of n draws from {@link #values}; a draw that rounds to ±0 becomes 0.5. (bf16 has float's
     * exponent range, so that only happens below ~1e-40, which lo + (hi − lo)·u with u a multiple of 2^-53 does not
     * reach for ranges like [-2, 2): the guard is for odd ranges, not the usual ones.)
     */
    static short[] bf16Values(long seed, int n, float lo, float hi) {
        float[] v = values(seed, n, lo, hi);
        short[] bits = new short[n];
        for (int i = 0; i < n; i++) {
            bits[i] = Bf16.fromFloat(v[i]);
            if (bits[i] == 0 || bits[i] == (short) 0x8000) {
                bits[i] = Bf16.fromFloat(0.5f);
            }
        }
        return bits;
    }

    static int numel(int... shape) {
        return (int) facm.tensor.Shapes.numel(shape);
    }

    // ---------------------------------------------------------------- comparisons

    /** Distance in units in the last place (0 for equal values, both NaN, or +0 vs -0). */
    static long ulps(float a, float b) {
        if (a == b || (Float.isNaN(a) && Float.isNaN(b))) {
            return 0;
        }
        if (Float.isNaN(a) || Float.isNaN(b)) {
            return Long.MAX_VALUE;
        }
        return Math.abs(ordered(a) - ordered(b));
    }

    private static long ordered(float f) {
        int bits = Float.floatToRawIntBits(f);
        return bits >= 0 ? bits : (long) Integer.MIN_VALUE - bits;
    }

    /** Equal bit patterns, except that any NaN equals any NaN. */
    static void assertBitEqual(String what, float[] expected, float[] actual) {
        assertUlps(what, expected, actual, 0, 0f);
    }

    /** Within maxUlps of the reference, or within absFloor of it (for results in the denormal range). */
    static void assertUlps(String what, float[] expected, float[] actual, int maxUlps, float absFloor) {
        checkLength(what, expected.length, actual.length);
        int bad = 0;
        int first = -1;
        long worst = 0;
        for (int i = 0; i < expected.length; i++) {
            long u = ulps(expected[i], actual[i]);
            worst = Math.max(worst, u == Long.MAX_VALUE ? worst : u);
            if (u > maxUlps && !(Math.abs(expected[i] - actual[i]) <= absFloor)) {
                bad++;
                if (first < 0) {
                    first = i;
                }
            }
        }
        if (bad > 0) {
            fail(what + ": " + bad + " of " + expected.length + " elements differ by more than " + maxUlps
                    + " ulp; first at [" + first + "]: cpu " + expected[first] + ", gpu " + actual[first] + " ("
                    + ulps(expected[first], actual[first]) + " ulp)");
        }
    }

    /** |gpu - cpu| <= tolerance[i] per element (NaN must match NaN). */
    static void assertWithin(String what, float[] expected, float[] actual, float[] tolerance) {
        checkLength(what, expected.length, actual.length);
        int bad = 0;
        int first = -1;
        for (int i = 0; i < expected.length; i++) {
            boolean ok = Float.isNaN(expected[i]) ? Float.isNaN(actual[i])
                    : expected[i] == actual[i] || Math.abs(expected[i] - actual[i]) <= tolerance[i];
            if (!ok) {
                bad++;
                if (first < 0) {
                    first = i;
                }
            }
        }
        if (bad > 0) {
            fail(what + ": " + bad + " of " + expected.length + " elements out of tolerance; first at [" + first
                    + "]: cpu " + expected[first] + ", gpu " + actual[first] + ", |diff| "
                    + Math.abs(expected[first] - actual[first]) + " > " + tolerance[first]);
        }
    }

    /**
     * |actual − expected| ≤ tol · max(floor, max |expected|) per element; NaN anywhere fails. For results whose error
     * scales with the tensor's largest value (sums of many rounded terms), not with each element's own size.
     */
    static void assertWithinFractionOfMax(String what, double[] expected, float[] actual, double tol, double floor) {
        double max = floor;
        for (double e : expected) {
            max = Math.max(max, Math.abs(e));
        }
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - actual[i]);
            if (!(err <= tol * max)) {
                throw new AssertionError(what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]
                        + " (tolerance " + tol + " of max " + max + ")");
            }
        }
    }

    static double[] widen(float[] values) {
        double[] wide = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            wide[i] = values[i];
        }
        return wide;
    }

    private static void checkLength(String what, int expected, int actual) {
        if (expected != actual) {
            fail(what + ": cpu gave " + expected + " values, gpu " + actual);
        }
    }
}
