package facm.backend.cpu;

import facm.tensor.ReduceOp;

import java.util.Arrays;

/**
 * Reductions over one axis and the softmax over the last axis, on float arrays (shape checks are in
 * {@link CpuBackend}). Sums and the softmax normalizer accumulate in float64, so SUM and MEAN are the float
 * rounding of a nearly exact sum and the softmax is within about 1 ulp of the exact value.
 *
 * <p>An axis of length zero gives SUM = 0, MEAN = NaN (0/0) and MAX = -inf. MAX propagates NaN.
 */
final class ReductionOps {
    /** Output columns one task accumulates at a time when the reduced axis is not the last one. */
    private static final int COLUMN_BLOCK = 512;
    /** Input elements worth one task. */
    private static final long ELEMENTS_PER_TASK = 1 << 15;

    private ReductionOps() {
    }

    /**
     * Reduces x viewed as [outer, len, inner] over the middle axis into out viewed as [outer, inner].
     * Work is split over (outer index, block of inner columns), so both a long outer (reduce the last axis of many
     * rows) and a wide inner (reduce the first axis of a few long rows) keep every thread busy.
     */
    static void reduce(ParallelRanges par, ReduceOp op, float[] x, int outer, int len, int inner, float[] out) {
        int blocksPerRow = (inner + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
        long units = (long) outer * blocksPerRow;
        long workPerUnit = Math.max(1L, (long) len * Math.min(inner, COLUMN_BLOCK));
        long grain = Math.max(1, ELEMENTS_PER_TASK / workPerUnit);
        par.forRange(units, grain, (s, e) -> {
            int maxWidth = Math.min(inner, COLUMN_BLOCK);
            double[] acc = new double[maxWidth];
            float[] best = new float[maxWidth];
            for (long u = s; u < e; u++) {
                int o = (int) (u / blocksPerRow);
                int c0 = (int) (u % blocksPerRow) * COLUMN_BLOCK;
                int width = Math.min(COLUMN_BLOCK, inner - c0);
                reduceBlock(op, x, o, len, inner, c0, width, acc, best, out);
            }
        });
    }

    private static void reduceBlock(ReduceOp op, float[] x, int o, int len, int inner, int c0, int width,
                                    double[] acc, float[] best, float[] out) {
        int base = o * len * inner + c0;
        if (op == ReduceOp.MAX) {
            // Accumulate in float: max is exact in any precision.
            Arrays.fill(best, 0, width, Float.NEGATIVE_INFINITY);
            for (int k = 0; k < len; k++) {
                int row = base + k * inner;
                for (int c = 0; c < width; c++) {
                    best[c] = Math.max(best[c], x[row + c]);
                }
            }
            System.arraycopy(best, 0, out, o * inner + c0, width);
            return;
        }
        Arrays.fill(acc, 0, width, 0.0);
        for (int k = 0; k < len; k++) {
            int row = base + k * inner;
            for (int c = 0; c < width; c++) {
                acc[c] += x[row + c];
            }
        }
        int dst = o * inner + c0;
        boolean mean = op == ReduceOp.MEAN;
        for (int c = 0; c < width; c++) {
            out[dst + c] = (float) (mean ? acc[c] / len : acc[c]);
        }
    }

    /**
     * Softmax over rows of length {@code cols}: out = exp(x - max) / sum(exp(x - max)), with the exponentials and
     * their sum in float64 and one rounding at the end. {@code out} may be the same array as {@code x}.
     */
    static void softmax(ParallelRanges par, float[] x, int rows, int cols, float[] out) {
        long grain = Math.max(1, (ELEMENTS_PER_TASK / 8) / Math.max(1, cols));
        par.forRange(rows, grain, (s, e) -> {
            double[] exps = new double[cols];
            for (int r = (int) s; r < (int) e; r++) {
                int base = r * cols;
                float max = Float.NEGATIVE_INFINITY;
                for (int c = 0; c < cols; c++) {
                    max = Math.max(max, x[base + c]);
                }
                double sum = 0.0;
                for (int c = 0; c < cols; c++) {
                    double v = Math.exp((double) x[base + c] - max);
                    exps[c] = v;
                    sum += v;
                }
                for (int c = 0; c < cols; c++) {
                    out[base + c] = (float) (exps[c] / sum);
                }
            }
        });
    }
}
