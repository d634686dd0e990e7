package facm.backend.cpu;

/**
 * The loops the CPU attention ops ({@link CpuAttention}, {@link CpuAttentionJvp}) are built from, on one head and one
 * block of up to {@link #ROWS} query rows, in float64.
 *
 * <p>Why this layout: the JIT vectorizes a loop only when its innermost index walks contiguous memory with no
 * reduction (a float64 sum must keep its order, so it is never vectorized) and when it can prove that no store changes
 * what a later iteration loads, which for arrays of one type means every access at the same index of its own array
 * (see {@link CpuGemm}). A per-query-row loop has its dot products over the head dimension innermost, which stays
 * scalar. Here the block's queries are transposed ({@code [dh][ROWS]}, one array per head component) and every
 * score-sized buffer is an array per key ({@code [key j][query i]}): each loop then runs over the block's query rows i
 * for one key and one head component, a vector update {@code row[i] += scalar · other[i]}, and every sum still adds
 * its terms in the order of the one-row-at-a-time loops it replaces (keys in increasing j, head components in
 * increasing d, from 0.0), so the results are bit-identical to them. Unrolling by four adds four terms to an
 * accumulator per pass as {@code (((acc + t0) + t1) + t2) + t3}: the same order, a quarter of the loads and stores.
 */
final class AttentionBlocks {
    /** Query rows per block: big enough for long vector loops, small enough that a head's buffers stay in cache. */
    static final int ROWS = 128;

    private AttentionBlocks() {
    }

    /** The per-task buffers of one block. */
    static final class Scratch {
        /** [key j][query i]: scores, then the softmax numerators p. */
        final double[][] scores;
        /** [key j][query i]: dO·v then dS (backward), or Ṡ (JVP). */
        final double[][] second;
        /** [d][query i]: the block's queries (q), and dO or q̇. */
        final double[][] queries;
        final double[][] queriesDot;
        /** [d][query i]: Σ_j p v (or the query gradient), and the JVP's tangent sum. */
        final double[][] acc;
        final double[][] accDot;
        final DoubleExp.Scratch exp = new DoubleExp.Scratch(ROWS);
        final double[] rowMax = new double[ROWS];
        final double[] rowSum = new double[ROWS];
        final double[] rowExtra = new double[ROWS];

        Scratch(int tokens, int dh) {
            scores = new double[tokens][ROWS];
            second = new double[tokens][ROWS];
            queries = new double[dh][ROWS];
            queriesDot = new double[dh][ROWS];
            acc = new double[dh][ROWS];
            accDot = new double[dh][ROWS];
        }
    }

    /**
     * dst[d][i] = src[start + i·rowStride + d] for i &lt; rows, d &lt; dh: a block of rows (heads layout: rowStride dh;
     * token-major [B,T,H·dh] layout: rowStride H·dh) transposed into [dh][rows].
     */
    static void loadTransposed(float[] src, int start, int rowStride, int rows, int dh, double[][] dst) {
        for (int d = 0; d < dh; d++) {
            double[] row = dst[d];
            int at = start + d;
            for (int i = 0; i < rows; i++) {
                row[i] = src[at + i * rowStride];
            }
        }
    }

    /**
     * out[j][i] (+)= Σ_d keys[kvBase + j·dh + d] · qt[d][i] for every key j &lt; tokens, summed over d in increasing
     * order onto 0.0 ({@code accumulate} false) or onto the value already there (true).
     */
    static void dots(float[] keys, int kvBase, int tokens, int dh, double[][] qt, int rows, double[][] out,
                     boolean accumulate) {
        int j = 0;
        for (; j + 2 <= tokens; j += 2) {
            // Two keys per pass share the loads of the query rows.
            double[] o0 = out[j], o1 = out[j + 1];
            int key0 = kvBase + j * dh, key1 = key0 + dh;
            if (!accumulate) {
                java.util.Arrays.fill(o0, 0, rows, 0.0);
                java.util.Arrays.fill(o1, 0, rows, 0.0);
            }
            int d = 0;
            for (; d + 4 <= dh; d += 4) {
                double k0 = keys[key0 + d], k1 = keys[key0 + d + 1], k2 = keys[key0 + d + 2];
                double k3 = keys[key0 + d + 3];
                double m0 = keys[key1 + d], m1 = keys[key1 + d + 1], m2 = keys[key1 + d + 2];
                double m3 = keys[key1 + d + 3];
                double[] q0 = qt[d], q1 = qt[d + 1], q2 = qt[d + 2], q3 = qt[d + 3];
                for (int i = 0; i < rows; i++) {
                    double x0 = q0[i], x1 = q1[i], x2 = q2[i], x3 = q3[i];
                    o0[i] = o0[i] + x0 * k0 + x1 * k1 + x2 * k2 + x3 * k3;
                    o1[i] = o1[i] + x0 * m0 + x1 * m1 + x2 * m2 + x3 * m3;
                }
            }
            for (; d < dh; d++) {
                double k0 = keys[key0 + d], m0 = keys[key1 + d];
                double[] q0 = qt[d];
                for (int i = 0; i < rows; i++) {
                    o0[i] = o0[i] + q0[i] * k0;
                    o1[i] = o1[i] + q0[i] * m0;
                }
            }
        }
        for (; j < tokens; j++) {
            double[] o = out[j];
            int key = kvBase + j * dh;
            if (!accumulate) {
                java.util.Arrays.fill(o, 0, rows, 0.0);
            }
            int d = 0;
            for (; d + 4 <= dh; d += 4) {
                double k0 = keys[key + d], k1 = keys[key + d + 1], k2 = keys[key + d + 2], k3 = keys[key + d + 3];
                double[] q0 = qt[d], q1 = qt[d + 1], q2 = qt[d + 2], q3 = qt[d + 3];
                for (int i = 0; i < rows; i++) {
                    o[i] = o[i] + q0[i] * k0 + q1[i] * k1 + q2[i] * k2 + q3[i] * k3;
                }
            }
            for (; d < dh; d++) {
                double k0 = keys[key + d];
                double[] q0 = qt[d];
                for (int i = 0; i < rows; i++) {
                    o[i] = o[i] + q0[i] * k0;
                }
            }
        }
    }

    /**
     * The softmax numerators of a score block: s ← s·scale, rowMax = max_j s (per query), then s ← e^(s − rowMax)
     * (through {@link DoubleExp}).
     */
    static void softmaxNumerators(double[][] s, int tokens, int rows, double scale, double[] rowMax,
                                  DoubleExp.Scratch exp) {
        java.util.Arrays.fill(rowMax, 0, rows, Double.NEGATIVE_INFINITY);
        for (int j = 0; j < tokens; j++) {
            double[] o = s[j];
            for (int i = 0; i < rows; i++) {
                double v = o[i] * scale;
                o[i] = v;
                rowMax[i] = Math.max(rowMax[i], v);
            }
        }
        for (int j = 0; j < tokens; j++) {
            double[] o = s[j];
            for (int i = 0; i < rows; i++) {
                o[i] = o[i] - rowMax[i];
            }
            DoubleExp.inPlace(o, 0, rows, exp);
        }
    }

    /**
     * rowSum[i] = Σ_j p[j][i] and acc[d][i] = Σ_j p[j][i] · values[kvBase + j·dh + d], both over j in increasing
     * order from 0.0.
     */
    static void weightedValues(double[][] p, float[] values, int kvBase, int tokens, int dh, int rows,
                               double[] rowSum, double[][] acc) {
        java.util.Arrays.fill(rowSum, 0, rows, 0.0);
        for (int d = 0; d < dh; d++) {
            java.util.Arrays.fill(acc[d], 0, rows, 0.0);
        }
        int j = 0;
        for (; j + 4 <= tokens; j += 4) {
            double[] p0 = p[j], p1 = p[j + 1], p2 = p[j + 2], p3 = p[j + 3];
            for (int i = 0; i < rows; i++) {
                rowSum[i] = rowSum[i] + p0[i] + p1[i] + p2[i] + p3[i];
            }
            fourTermsInto(acc, values, kvBase + j * dh, dh, p0, p1, p2, p3, rows);
        }
        for (; j < tokens; j++) {
            double[] p0 = p[j];
            for (int i = 0; i < rows; i++) {
                rowSum[i] = rowSum[i] + p0[i];
            }
            int v0 = kvBase + j * dh;
            for (int d = 0; d < dh; d++) {
                double x0 = values[v0 + d];
                double[] a = acc[d];
                for (int i = 0; i < rows; i++) {
                    a[i] = a[i] + p0[i] * x0;
                }
            }
        }
    }

    /**
     * acc[d][i] = Σ_j w[j][i] · keys[kvBase + j·dh + d] over j in increasing order from 0.0 (the query gradient
     * Σ_j dS_ij k_j of the backward).
     */
    static void weightedKeys(double[][] w, float[] keys, int kvBase, int tokens, int dh, int rows, double[][] acc) {
        for (int d = 0; d < dh; d++) {
            java.util.Arrays.fill(acc[d], 0, rows, 0.0);
        }
        int j = 0;
        for (; j + 4 <= tokens; j += 4) {
            double[] w0 = w[j], w1 = w[j + 1], w2 = w[j + 2], w3 = w[j + 3];
            fourTermsInto(acc, keys, kvBase + j * dh, dh, w0, w1, w2, w3, rows);
        }
        for (; j < tokens; j++) {
            double[] w0 = w[j];
            int k0 = kvBase + j * dh;
            for (int d = 0; d < dh; d++) {
                double x0 = keys[k0 + d];
                double[] a = acc[d];
                for (int i = 0; i < rows; i++) {
                    a[i] = a[i] + w0[i] * x0;
                }
            }
        }
    }

    /**
     * acc[d][i] += w0[i]·m[at + d] + w1[i]·m[at + dh + d] + w2[i]·m[at + 2dh + d] + w3[i]·m[at + 3dh + d] (added in
     * that order) for every d: four consecutive rows of a [T, dh] matrix m weighted by four score rows. Two head
     * components per pass share the loads of the score rows.
     */
    private static void fourTermsInto(double[][] acc, float[] m, int at, int dh, double[] w0, double[] w1,
                                      double[] w2, double[] w3, int rows) {
        int d = 0;
        for (; d + 2 <= dh; d += 2) {
            double x0 = m[at + d], x1 = m[at + dh + d], x2 = m[at + 2 * dh + d], x3 = m[at + 3 * dh + d];
            double y0 = m[at + d + 1], y1 = m[at + dh + d + 1], y2 = m[at + 2 * dh + d + 1];
            double y3 = m[at + 3 * dh + d + 1];
            double[] a = acc[d], c = acc[d + 1];
            for (int i = 0; i < rows; i++) {
                double p0 = w0[i], p1 = w1[i], p2 = w2[i], p3 = w3[i];
                a[i] = a[i] + p0 * x0 + p1 * x1 + p2 * x2 + p3 * x3;
                c[i] = c[i] + p0 * y0 + p1 * y1 + p2 * y2 + p3 * y3;
            }
        }
        for (; d < dh; d++) {
            double x0 = m[at + d], x1 = m[at + dh + d], x2 = m[at + 2 * dh + d], x3 = m[at + 3 * dh + d];
            double[] a = acc[d];
            for (int i = 0; i < rows; i++) {
                a[i] = a[i] + w0[i] * x0 + w1[i] * x1 + w2[i] * x2 + w3[i] * x3;
            }
        }
    }

    /**
     * dst[c][r] = src[r][c] for r &lt; srcRows, c &lt; srcCols (a block of rows as a block of columns), four destination
     * rows per pass so that each source row is fetched once per four elements.
     */
    static void transpose(double[][] src, int srcRows, int srcCols, double[][] dst) {
        int c = 0;
        for (; c + 4 <= srcCols; c += 4) {
            double[] d0 = dst[c], d1 = dst[c + 1], d2 = dst[c + 2], d3 = dst[c + 3];
            for (int r = 0; r < srcRows; r++) {
                double[] from = src[r];
                d0[r] = from[c];
                d1[r] = from[c + 1];
                d2[r] = from[c + 2];
                d3[r] = from[c + 3];
            }
        }
        for (; c < srcCols; c++) {
            double[] d0 = dst[c];
            for (int r = 0; r < srcRows; r++) {
                d0[r] = src[r][c];
            }
        }
    }
}
