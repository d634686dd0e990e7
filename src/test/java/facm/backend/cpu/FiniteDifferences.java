package facm.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The gradient check of the CPU backward ops: a float64 forward written in the test, the random linear functional
 * L = Σ r ⊙ out(inputs), its gradient by central differences (L(θ + h) − L(θ − h)) / 2h with h = 1e-6 in float64, and
 * the CPU backward (fp32, fed the same fp32 inputs and gradOut = r) compared with it.
 *
 * <p>The error measure, for one gradient tensor over the checked coordinates: max_i |backward_i − fd_i| / max_i |fd_i|
 * (normwise relative error in the max norm); it must be below {@link #TOLERANCE} = 1e-4. Each check prints its
 * measured error, prefixed by [FD].
 */
final class FiniteDifferences {
    static final double STEP = 1e-6;
    static final double TOLERANCE = 1e-4;
    static final double ZERO_GRADIENT_TOLERANCE = 1e-6;

    /** A float64 forward: inputs (each a flat array) to one flat output. */
    @FunctionalInterface
    interface Forward {
        double[] apply(double[][] inputs);
    }

    private FiniteDifferences() {
    }

    static double[] toDouble(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            d[i] = v[i];
        }
        return d;
    }

    static double dot(double[] a, double[] b) {
        assertEquals(a.length, b.length, "dot: lengths");
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    /** All of [0, n) when n <= limit, else {@code limit} distinct indices drawn with {@code seed}, sorted. */
    static int[] coordinates(int n, int limit, long seed) {
        if (n <= limit) {
            int[] all = new int[n];
            Arrays.setAll(all, i -> i);
            return all;
        }
        int[] pick = new SplittableRandom(seed).ints(0, n).distinct().limit(limit).toArray();
        Arrays.sort(pick);
        return pick;
    }

    /**
     * dL/d inputs[which][i] for the given coordinates by central differences with step h (the other entries of the
     * result stay 0). The inputs are restored afterwards.
     */
    static double[] gradient(Forward f, double[][] inputs, int which, double[] r, int[] coords, double h) {
        double[] x = inputs[which];
        double[] g = new double[x.length];
        for (int i : coords) {
            double saved = x[i];
            x[i] = saved + h;
            double plus = dot(f.apply(inputs), r);
            x[i] = saved - h;
            double minus = dot(f.apply(inputs), r);
            x[i] = saved;
            g[i] = (plus - minus) / (2 * h);
        }
        return g;
    }

    static double[] gradient(Forward f, double[][] inputs, int which, double[] r, int[] coords) {
        return gradient(f, inputs, which, r, coords, STEP);
    }

    /**
     * The directional derivative of f along {@code directions} (one per input; null: that input is held fixed) by
     * central differences (f(x + h·ẋ) − f(x − h·ẋ)) / 2h with step {@link #STEP}: the float64 reference of a JVP.
     */
    static double[] directional(Forward f, double[][] inputs, double[][] directions) {
        double[][] plus = new double[inputs.length][], minus = new double[inputs.length][];
        for (int i = 0; i < inputs.length; i++) {
            plus[i] = inputs[i] == null ? null : inputs[i].clone();
            minus[i] = inputs[i] == null ? null : inputs[i].clone();
            if (directions[i] != null) {
                assertEquals(inputs[i].length, directions[i].length, "directional: input " + i + " length");
                for (int j = 0; j < inputs[i].length; j++) {
                    plus[i][j] += STEP * directions[i][j];
                    minus[i][j] -= STEP * directions[i][j];
                }
            }
        }
        double[] up = f.apply(plus), down = f.apply(minus);
        double[] d = new double[up.length];
        for (int j = 0; j < d.length; j++) {
            d[j] = (up[j] - down[j]) / (2 * STEP);
        }
        return d;
    }

    /**
     * Checks a backward result against finite differences over coords and prints the measured error: max-norm
     * relative error below {@link #TOLERANCE}. Where the true gradient is zero on every checked coordinate (e.g.
     * attention's gradQ and gradK with a single token, whose softmax is the constant 1), the backward must be zero
     * within an absolute {@link #ZERO_GRADIENT_TOLERANCE} instead.
     */
    static double check(String what, double[] fd, float[] backward, int[] coords) {
        double maxErr = 0, maxRef = 0;
        for (int i : coords) {
            double err = Math.abs(backward[i] - fd[i]);
            if (Double.isNaN(err)) {
                fail(what + ": element " + i + " is " + backward[i] + ", finite differences give " + fd[i]);
            }
            maxErr = Math.max(maxErr, err);
            maxRef = Math.max(maxRef, Math.abs(fd[i]));
        }
        if (maxRef == 0) {
            System.out.printf("[FD] %-60s zero gradient, abs err %.2e (%d coords)%n", what, maxErr, coords.length);
            if (!(maxErr <= ZERO_GRADIENT_TOLERANCE)) {
                fail(what + ": the gradient is zero, but the backward gives max |g| = " + maxErr);
            }
            return maxErr;
        }
        double rel = maxErr / maxRef;
        System.out.printf("[FD] %-60s rel err %.2e (%d coords)%n", what, rel, coords.length);
        if (!(rel < TOLERANCE)) {
            fail(what + ": max|backward - fd| / max|fd| = " + rel + " is not below " + TOLERANCE);
        }
        return rel;
    }

    static double check(String what, double[] fd, float[] backward) {
        int[] all = new int[fd.length];
        Arrays.setAll(all, i -> i);
        return check(what, fd, backward, all);
    }

    /**
     * The float64 forward against the CPU forward: |cpu − f64| ≤ 2 ulp(f64) + 1e-6·max|f64| (the CPU rounds its float64
     * result once; sums in another order differ by a few float64 ulps).
     */
    static void checkForward(String what, double[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        double max = 0;
        for (double e : expected) {
            max = Math.max(max, Math.abs(e));
        }
        for (int i = 0; i < expected.length; i++) {
            double tol = 2 * Math.ulp((float) expected[i]) + 1e-6 * max;
            if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
                fail(what + " forward: element " + i + " is " + actual[i] + ", float64 gives " + expected[i] + " ± "
                        + tol);
            }
        }
    }

    /** Fails unless both arrays hold the same bits (NaN patterns included). */
    static void assertBitIdentical(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + ": element " + i + " is " + actual[i] + ", expected exactly " + expected[i]);
            }
        }
    }

    /**
     * Accumulation: a parameter gradient that started at {@code start} and received the same backward twice must hold
     * start + 2·once, where {@code once} is what one call added to zeros (within 3 ulp for the two roundings).
     */
    static void assertAccumulatedTwice(String what, float[] start, float[] once, float[] twice) {
        assertEquals(start.length, twice.length, what + ": length");
        for (int i = 0; i < start.length; i++) {
            double expected = (double) start[i] + 2.0 * once[i];
            double tol = 3 * Math.ulp((float) expected) + 1e-7 * Math.abs(once[i]);
            if (!(Math.abs(twice[i] - expected) <= tol)) {
                fail(what + ": after two calls element " + i + " is " + twice[i] + ", expected " + start[i] + " + 2·"
                        + once[i] + " = " + expected + " ± " + tol);
            }
        }
    }
}
