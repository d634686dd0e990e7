package facm.backend.cpu;

/**
 * The loops the CPU attention ops ({@link CpuAttention}, {@link CpuAttentionJvp}) are built from, on one head and one
 * block of up to {@link #ROWS} query rows, in float64.
 *
 * <p>Why this layout: the JIT vectorizes a loop only when its innermost index walks contiguous memory with no
 * reduction (a float64 sum must keep its order, so it is never vectorized). A per-query-row loop has its dot products
 * over the head dimension innermost, which stays scalar. Here the block's queries are transposed ({@code [dh][ROWS]})
 * and every score-sized buffer is kept as {@code [key j][query i]}: each loop then runs over the block's query rows
 * for one key and one head component, a vector update {@code row[i] += scalar · row[i]}, and every sum still adds its
 * terms in the order of the one-row-at-a-time loops it replaces (keys in increasing j, head components in increasing
 * d, from 0.0), so the results are bit-identical to them. Unrolling by four adds four terms to an accumulator per
 * pass as {@code (((acc + t0) + t1) + t2) + t3}: the same order, a quarter of the loads and stores.
 */
final class AttentionBlocks {
    /** Query rows per block: big enough for long vector loops, small enough that a head's buffers stay in cache. */
    static final int ROWS = 64;

    private AttentionBlocks() {
    }

    /** The per-task buffers of one block; {@code [j][i]} buffers have {@code tokens · ROWS} elements. */
    static final class Scratch {
        final double[] scores;
        final double[] second;
        final long[] expBits;
        final double[] queries;
        final double[] queriesDot;
        final double[] acc;
        final double[] accDot;
        final double[] rowMax = new double[ROWS];
        final double[] rowSum = new double[ROWS];
        final double[] rowExtra = new double[ROWS];

        Scratch(int tokens, int dh) {
            scores = new double[tokens * ROWS];
            second = new double[tokens * ROWS];
            expBits = new long[tokens * ROWS];
            queries = new double[dh * ROWS];
            queriesDot = new double[dh * ROWS];
            acc = new double[dh * ROWS];
            accDot = new double[dh * ROWS];
        }
    }

    /**
     * dst[d·ROWS + i] = src[start + i·rowStride + d] for i &lt; rows, d &lt; dh: a block of rows (heads layout: rowStride
     * dh; token-major [B,T,H·dh] layout: rowStride H·dh) transposed into [dh][ROWS].
     */
    static void loadTransposed(float[] src, int start, int rowStride, int rows, int dh, double[] dst) {
        for (int i = 0; i < rows; i++) {
            int from = start + i * rowStride;
            for (int d = 0; d < dh; d++) {
                dst[d * ROWS + i] = src[from + d];
            }
        }
    }

    /**
     * out[j·ROWS + i] (+)= Σ_d keys[kvBase + j·dh + d] · qt[d·ROWS + i] for every key j &lt; tokens, summed over d in
     * increasing order onto 0.0 ({@code accumulate} false) or onto the value already there (true).
     */
    static void dots(float[] keys, int kvBase, int tokens, int dh, double[] qt, int rows, double[] out,
                     boolean accumulate) {
        for (int j = 0; j < tokens; j++) {
            int s = j * ROWS;
            int key = kvBase + j * dh;
            if (!accumulate) {
                for (int i = 0; i < rows; i++) {
                    out[s + i] = 0.0;
                }
            }
            int d = 0;
            for (; d + 4 <= dh; d += 4) {
                double k0 = keys[key + d], k1 = keys[key + d + 1], k2 = keys[key + d + 2], k3 = keys[key + d + 3];
                int q0 = d * ROWS, q1 = q0 + ROWS, q2 = q1 + ROWS, q3 = q2 + ROWS;
                for (int i = 0; i < rows; i++) {
                    out[s + i] = out[s + i] + qt[q0 + i] * k0 + qt[q1 + i] * k1 + qt[q2 + i] * k2 + qt[q3 + i] * k3;
                }
            }
            for (; d < dh; d++) {
                double k0 = keys[key + d];
                int q0 = d * ROWS;
                for (int i = 0; i < rows; i++) {
                    out[s + i] = out[s + i] + qt[q0 + i] * k0;
                }
            }
        }
    }

    /**
     * The softmax numerators of a score block: s ← s·scale, rowMax = max_j s (per query), then s ← e^(s − rowMax)
     * (through {@link DoubleExp}).
     */
    static void softmaxNumerators(double[] s, int tokens, int rows, double scale, double[] rowMax, long[] expBits) {
        for (int i = 0; i < rows; i++) {
            rowMax[i] = Double.NEGATIVE_INFINITY;
        }
        for (int j = 0; j < tokens; j++) {
            int o = j * ROWS;
            for (int i = 0; i < rows; i++) {
                double v = s[o + i] * scale;
                s[o + i] = v;
                rowMax[i] = Math.max(rowMax[i], v);
            }
        }
        for (int j = 0; j < tokens; j++) {
            int o = j * ROWS;
            for (int i = 0; i < rows; i++) {
                s[o + i] = s[o + i] - rowMax[i];
            }
        }
        DoubleExp.inPlace(s, 0, tokens * ROWS, expBits);
    }

    /**
     * rowSum[i] = Σ_j p[j·ROWS + i] and acc[d·ROWS + i] = Σ_j p[j·ROWS + i] · values[kvBase + j·dh + d], both over j
     * in increasing order from 0.0.
     */
    static void weightedValues(double[] p, float[] values, int kvBase, int tokens, int dh, int rows, double[] rowSum,
                               double[] acc) {
        java.util.Arrays.fill(rowSum, 0, rows, 0.0);
        for (int d = 0; d < dh; d++) {
            java.util.Arrays.fill(acc, d * ROWS, d * ROWS + rows, 0.0);
        }
        int j = 0;
        for (; j + 4 <= tokens; j += 4) {
            int p0 = j * ROWS, p1 = p0 + ROWS, p2 = p1 + ROWS, p3 = p2 + ROWS;
            for (int i = 0; i < rows; i++) {
                rowSum[i] = rowSum[i] + p[p0 + i] + p[p1 + i] + p[p2 + i] + p[p3 + i];
            }
            int v0 = kvBase + j * dh;
            for (int d = 0; d < dh; d++) {
                double x0 = values[v0 + d], x1 = values[v0 + dh + d], x2 = values[v0 + 2 * dh + d];
                double x3 = values[v0 + 3 * dh + d];
                int a = d * ROWS;
                for (int i = 0; i < rows; i++) {
                    acc[a + i] = acc[a + i] + p[p0 + i] * x0 + p[p1 + i] * x1 + p[p2 + i] * x2 + p[p3 + i] * x3;
                }
            }
        }
        for (; j < tokens; j++) {
            int p0 = j * ROWS;
            for (int i = 0; i < rows; i++) {
                rowSum[i] = rowSum[i] + p[p0 + i];
            }
            int v0 = kvBase + j * dh;
            for (int d = 0; d < dh; d++) {
                double x0 = values[v0 + d];
                int a = d * ROWS;
                for (int i = 0; i < rows; i++) {
                    acc[a + i] = acc[a + i] + p[p0 + i] * x0;
                }
            }
        }
    }

    /**
     * acc[d·ROWS + i] = Σ_j w[j·ROWS + i] · keys[kvBase + j·dh + d] over j in increasing order from 0.0 (the
     * query gradient Σ_j dS_ij k_j of the backward).
     */
    static void weightedKeys(double[] w, float[] keys, int kvBase, int tokens, int dh, int rows, double[] acc) {
        for (int d = 0; d < dh; d++) {
            java.util.Arrays.fill(acc, d * ROWS, d * ROWS + rows, 0.0);
        }
        int j = 0;
        for (; j + 4 <= tokens; j += 4) {
            int w0 = j * ROWS, w1 = w0 + ROWS, w2 = w1 + ROWS, w3 = w2 + ROWS;
            int k0 = kvBase + j * dh;
            for (int d = 0; d < dh; d++) {
                double x0 = keys[k0 + d], x1 = keys[k0 + dh + d], x2 = keys[k0 + 2 * dh + d];
                double x3 = keys[k0 + 3 * dh + d];
                int a = d * ROWS;
                for (int i = 0; i < rows; i++) {
                    acc[a + i] = acc[a + i] + w[w0 + i] * x0 + w[w1 + i] * x1 + w[w2 + i] * x2 + w[w3 + i] * x3;
                }
            }
        }
        for (; j < tokens; j++) {
            int w0 = j * ROWS;
            int k0 = kvBase + j * dh;
            for (int d = 0; d < dh; d++) {
                double x0 = keys[k0 + d];
                int a = d * ROWS;
                for (int i = 0; i < rows; i++) {
                    acc[a + i] = acc[a + i] + w[w0 + i] * x0;
                }
            }
        }
    }

    /** dst[i·tokens + j] = src[j·ROWS + i] for i &lt; rows, j &lt; tokens: a [j][i] block as [i][j]. */
    static void transpose(double[] src, int tokens, int rows, double[] dst) {
        for (int i = 0; i < rows; i++) {
            int o = i * tokens;
            for (int j = 0; j < tokens; j++) {
                dst[o + j] = src[j * ROWS + i];
            }
        }
    }
}
