package facm.backend.cpu;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.SplittableRandom;

/** Inputs and comparisons for checking CPU ops against straightforward float64 loops. */
final class ReferenceData {
    /** Odd shapes that exercise remainders, a single element and more than one task. */
    static final int[][] ODD_SHAPES = {{3, 37, 5}, {1}, {129, 257}};

    private ReferenceData() {
    }

    /** Values with |v| in [0.1, 2] and random sign: never zero, so a missing write cannot hide as a zero. */
    static float[] nonZero(long seed, int n) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            float mag = (float) (0.1 + 1.9 * r.nextDouble());
            v[i] = r.nextBoolean() ? mag : -mag;
        }
        return v;
    }

    /** Values in [lo, hi). */
    static float[] uniform(long seed, int n, double lo, double hi) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (lo + (hi - lo) * r.nextDouble());
        }
        return v;
    }

    static float[] nans(int n) {
        float[] v = new float[n];
        Arrays.fill(v, Float.NaN);
        return v;
    }

    static int numel(int[] shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    /** Fails unless actual[i] is within {@code ulps} float ulps of the float64 value expected[i]. */
    static void assertWithinUlps(String what, double[] expected, float[] actual, double ulps) {
        if (expected.length != actual.length) {
            fail(what + ": length " + actual.length + ", expected " + expected.length);
        }
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i];
            double tol = ulps * Math.ulp((float) e);
            if (!(Math.abs(actual[i] - e) <= tol) && !(Double.isNaN(e) && Float.isNaN(actual[i]))
                    && !(Double.isInfinite(e) && e == actual[i])) {
                fail(what + ": element " + i + " is " + actual[i] + ", expected " + e + " (within " + ulps
                        + " ulp = " + tol + ")");
            }
        }
    }

    /** Fails unless |actual[i] - expected[i]| <= tolerance[i] for every i. */
    static void assertWithin(String what, double[] expected, float[] actual, double[] tolerance) {
        for (int i = 0; i < expected.length; i++) {
            if (!(Math.abs(actual[i] - expected[i]) <= tolerance[i])) {
                fail(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i] + " ± "
                        + tolerance[i]);
            }
        }
    }
}
