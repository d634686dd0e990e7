package facm.cuda.blas;

import facm.tensor.Bf16;
import java.util.Random;

/**
 * The float64 host product a {@link RowMajorGemm} must reproduce, and the comparison of a device result with it.
 *
 * <p>Error measure: for each output element, |got - expected| divided by the scale of the terms that were summed,
 * {@code |alpha| * sum_p |op(A)[r,p]| * |op(B)[p,j]| + |beta| * |C0[r,j]|}. This is the quantity floating-point error
 * bounds are stated in, and unlike a plain relative error it does not blow up where cancellation makes the result
 * small. Elements of C between matrices (strideC > m*n) must come back bit for bit unchanged.
 */
final class GemmReference {
    private GemmReference() {
    }

    /** The bound on the error measure each kind must meet. */
    static double tolerance(GemmKind kind) {
        return switch (kind) {
            case F32 -> 1e-5;
            case TF32 -> 2e-3;
            // Products of bf16 values are exact in fp32, so only fp32 accumulation error remains.
            case BF16_F32OUT -> 1e-5;
            // Dominated by the final rounding to bf16 (2^-9 relative).
            case BF16_BF16OUT -> 1e-2;
        };
    }

    /** {@code count} non-zero values in ±[0.25, 1), rounded to bf16 when {@code bf16}. */
    static float[] randomValues(long count, boolean bf16, Random random) {
        float[] v = new float[Math.toIntExact(count)];
        for (int i = 0; i < v.length; i++) {
            float x = (0.25f + 0.75f * random.nextFloat()) * (random.nextBoolean() ? 1f : -1f);
            v[i] = bf16 ? Bf16.round(x) : x;
        }
        return v;
    }

    static float opA(RowMajorGemm g, float[] a, int offset, int batch, int row, int p) {
        long base = offset + batch * g.strideA();
        return a[(int) (g.transA() ? base + (long) p * g.m() + row : base + (long) row * g.k() + p)];
    }

    static float opB(RowMajorGemm g, float[] b, int offset, int batch, int p, int col) {
        long base = offset + batch * g.strideB();
        return b[(int) (g.transB() ? base + (long) col * g.k() + p : base + (long) p * g.n() + col)];
    }

    static int cIndex(RowMajorGemm g, int offset, int batch, int row, int col) {
        return (int) (offset + batch * g.strideC() + (long) row * g.n() + col);
    }

    /**
     * Compares {@code got} (C after the product) with the float64 product of {@code a}, {@code b} and the C it
     * started from, {@code c0}. The operands start {@code offset} elements into each array.
     *
     * @return null when every element is within {@link #tolerance}, else a message naming the worst element
     */
    static String check(RowMajorGemm g, float[] a, float[] b, float[] c0, float[] got, int offset) {
        double tol = tolerance(g.kind());
        boolean[] inMatrix = new boolean[got.length];
        double worst = -1;
        String worstAt = "";
        int failures = 0;
        for (int i = 0; i < g.batch(); i++) {
            for (int r = 0; r < g.m(); r++) {
                for (int j = 0; j < g.n(); j++) {
                    double sum = 0;
                    double absSum = 0;
                    for (int p = 0; p < g.k(); p++) {
                        double term = (double) opA(g, a, offset, i, r, p) * opB(g, b, offset, i, p, j);
                        sum += term;
                        absSum += Math.abs(term);
                    }
                    int ci = cIndex(g, offset, i, r, j);
                    inMatrix[ci] = true;
                    double old = g.beta() == 0 ? 0 : c0[ci];
                    double expected = g.alpha() * sum + g.beta() * old;
                    double scale = Math.abs(g.alpha()) * absSum + Math.abs(g.beta()) * Math.abs(old) + 1e-30;
                    double error = Math.abs(got[ci] - expected) / scale;
                    if (!(error <= tol)) {
                        failures++;
                    }
                    if (!(error <= worst)) {
                        worst = Double.isNaN(error) ? Double.POSITIVE_INFINITY : error;
                        worstAt = "C[" + i + "][" + r + "][" + j + "]: got " + got[ci] + ", expected " + expected
                                + " (scale " + scale + ")";
                    }
                }
            }
        }
        if (failures > 0) {
            return failures + " elements off by more than " + tol + " of their scale; worst " + worst + " at "
                    + worstAt + ", for " + g.describe();
        }
        for (int ci = 0; ci < got.length; ci++) {
            if (!inMatrix[ci] && Float.floatToRawIntBits(got[ci]) != Float.floatToRawIntBits(c0[ci])) {
                return "element " + ci + " of C lies outside every output matrix but changed from " + c0[ci]
                        + " to " + got[ci] + ", for " + g.describe();
            }
        }
        return null;
    }
}
