package facm.backend.cpu;

import java.util.Arrays;

/**
 * The backward of {@link CpuAttention#attention} on raw arrays (shapes and aliasing are checked in
 * {@link CpuNetworkBackward}), in float64 with each gradient element rounded to fp32 once.
 *
 * <p>Layout, unlike the forward's (see {@link AttentionBlocks}): per block of query rows, the recomputed P and dS are
 * kept as one array per query row ({@code [i][key j]}), because the key and value gradients are sums over the query
 * rows, which then run as vector updates over j, query row by query row. Their operands come straight from q and dO
 * (one scalar per row and head component) and from the head's keys and values transposed once ({@code [d][j]}). Only
 * the query gradient, a sum over keys, needs dS the other way round: one transpose per block. Every sum adds its terms
 * in the order of a one-row-at-a-time loop (queries i and keys j increasing, head components d increasing, from 0.0),
 * so the results are those of that loop.
 */
final class CpuAttentionBackward {
    private CpuAttentionBackward() {
    }

    /**
     * Recomputes P from the saved lse (flash style, no full score matrix): per block of query rows, D_i = dO_i·O_i,
     * P_ij = exp(scale·q_i·k_j − lse_i), dS_ij = P_ij·(dO_i·v_j − D_i)·scale; gradQ_i = Σ_j dS_ij k_j,
     * gradK_j = Σ_i dS_ij q_i, gradV_j = Σ_i P_ij dO_i. Work is split over (batch, head): each task owns its head's
     * key/value gradients and adds the query blocks in increasing order. Null gradients are skipped.
     */
    static void attentionBackward(ParallelRanges par, CpuAttention.Layout l, float[] q, float[] k, float[] v,
                                  float scale, float[] out, float[] lse, float[] gradOut, float[] gradQ,
                                  float[] gradK, float[] gradV) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        if (gradQ == null && gradK == null && gradV == null) {
            return;
        }
        int rowsMax = AttentionBlocks.ROWS;
        int tokenStride = heads * dh;
        par.forRange((long) l.batch() * heads, CpuNetworkOps.grain(5L * tokens * tokens * dh), (s, e) -> {
            double[][] p = new double[rowsMax][tokens], ds = new double[rowsMax][tokens];
            double[][] dsByKey = new double[tokens][rowsMax];
            double[][] keysT = new double[dh][tokens], valuesT = new double[dh][tokens];
            double[][] accK = new double[dh][tokens], accV = new double[dh][tokens], accQ = new double[dh][rowsMax];
            double[] rowDot = new double[rowsMax], rowLse = new double[rowsMax];
            DoubleExp.Scratch exp = new DoubleExp.Scratch(tokens);
            for (int bh = (int) s; bh < e; bh++) {
                int b = bh / heads, h = bh % heads;
                int kvBase = bh * tokens * dh;
                AttentionBlocks.loadTransposed(k, kvBase, dh, tokens, dh, keysT);
                AttentionBlocks.loadTransposed(v, kvBase, dh, tokens, dh, valuesT);
                for (int d = 0; d < dh; d++) {
                    Arrays.fill(accK[d], 0);
                    Arrays.fill(accV[d], 0);
                }
                for (int i0 = 0; i0 < tokens; i0 += rowsMax) {
                    int rows = Math.min(rowsMax, tokens - i0);
                    int queryRow0 = kvBase + i0 * dh;
                    int tokenRow0 = ((b * tokens + i0) * heads + h) * dh;
                    for (int i = 0; i < rows; i++) {
                        double dot = 0;
                        int at = tokenRow0 + i * tokenStride;
                        for (int d = 0; d < dh; d++) {
                            dot += (double) gradOut[at + d] * out[at + d];
                        }
                        rowDot[i] = dot;
                        rowLse[i] = lse[bh * tokens + i0 + i];
                    }
                    // scores → P = exp(score·scale − lse); dO·v → dS = P·(dP − D)·scale, one query row at a time.
                    rowDots(q, queryRow0, dh, dh, keysT, rows, tokens, p);
                    rowDots(gradOut, tokenRow0, tokenStride, dh, valuesT, rows, tokens, ds);
                    for (int i = 0; i < rows; i++) {
                        double[] pi = p[i], dsi = ds[i];
                        double rl = rowLse[i], rd = rowDot[i];
                        for (int j = 0; j < tokens; j++) {
                            pi[j] = pi[j] * scale - rl;
                        }
                        DoubleExp.inPlace(pi, 0, tokens, exp);
                        for (int j = 0; j < tokens; j++) {
                            dsi[j] = pi[j] * (dsi[j] - rd) * scale;
                        }
                    }
                    if (gradV != null) {
                        addRowsTimesScalars(p, gradOut, tokenRow0, tokenStride, rows, tokens, dh, accV);
                    }
                    if (gradK != null) {
                        addRowsTimesScalars(ds, q, queryRow0, dh, rows, tokens, dh, accK);
                    }
                    if (gradQ != null) {
                        AttentionBlocks.transpose(ds, rows, tokens, dsByKey);
                        AttentionBlocks.weightedKeys(dsByKey, k, kvBase, tokens, dh, rows, accQ);
                        for (int i = 0; i < rows; i++) {
                            int row = queryRow0 + i * dh;
                            for (int d = 0; d < dh; d++) {
                                gradQ[row + d] = (float) accQ[d][i];
                            }
                        }
                    }
                }
                for (int j = 0; j < tokens; j++) {
                    for (int d = 0; d < dh; d++) {
                        if (gradK != null) {
                            gradK[kvBase + j * dh + d] = (float) accK[d][j];
                        }
                        if (gradV != null) {
                            gradV[kvBase + j * dh + d] = (float) accV[d][j];
                        }
                    }
                }
            }
        });
    }

    /**
     * out[i][j] = Σ_d src[start + i·rowStride + d] · colsT[d][j] over d in increasing order from 0.0, for each row
     * i &lt; rows and key j &lt; tokens (a query-row block times a transposed key or value matrix). Two rows per pass
     * share the loads of colsT.
     */
    private static void rowDots(float[] src, int start, int rowStride, int dh, double[][] colsT, int rows, int tokens,
                                double[][] out) {
        int i = 0;
        for (; i + 2 <= rows; i += 2) {
            double[] o0 = out[i], o1 = out[i + 1];
            int a = start + i * rowStride, c = a + rowStride;
            Arrays.fill(o0, 0, tokens, 0.0);
            Arrays.fill(o1, 0, tokens, 0.0);
            int d = 0;
            for (; d + 4 <= dh; d += 4) {
                double a0 = src[a + d], a1 = src[a + d + 1], a2 = src[a + d + 2], a3 = src[a + d + 3];
                double c0 = src[c + d], c1 = src[c + d + 1], c2 = src[c + d + 2], c3 = src[c + d + 3];
                double[] x0 = colsT[d], x1 = colsT[d + 1], x2 = colsT[d + 2], x3 = colsT[d + 3];
                for (int j = 0; j < tokens; j++) {
                    double y0 = x0[j], y1 = x1[j], y2 = x2[j], y3 = x3[j];
                    o0[j] = o0[j] + a0 * y0 + a1 * y1 + a2 * y2 + a3 * y3;
                    o1[j] = o1[j] + c0 * y0 + c1 * y1 + c2 * y2 + c3 * y3;
                }
            }
            for (; d < dh; d++) {
                double a0 = src[a + d], c0 = src[c + d];
                double[] x0 = colsT[d];
                for (int j = 0; j < tokens; j++) {
                    o0[j] = o0[j] + a0 * x0[j];
                    o1[j] = o1[j] + c0 * x0[j];
                }
            }
        }
        for (; i < rows; i++) {
            double[] o0 = out[i];
            int a = start + i * rowStride;
            Arrays.fill(o0, 0, tokens, 0.0);
            for (int d = 0; d < dh; d++) {
                double a0 = src[a + d];
                double[] x0 = colsT[d];
                for (int j = 0; j < tokens; j++) {
                    o0[j] = o0[j] + a0 * x0[j];
                }
            }
        }
    }

    /**
     * acc[d][j] += Σ_i w[i][j] · src[start + i·rowStride + d] over the block's rows i in increasing order (the
     * key/value gradient sums Σ_i dS_ij q_i and Σ_i P_ij dO_i), vectorized over j. Four rows and two head components
     * per pass.
     */
    private static void addRowsTimesScalars(double[][] w, float[] src, int start, int rowStride, int rows, int tokens,
                                            int dh, double[][] acc) {
        int i = 0;
        for (; i + 4 <= rows; i += 4) {
            double[] w0 = w[i], w1 = w[i + 1], w2 = w[i + 2], w3 = w[i + 3];
            int r0 = start + i * rowStride, r1 = r0 + rowStride, r2 = r1 + rowStride, r3 = r2 + rowStride;
            int d = 0;
            for (; d + 2 <= dh; d += 2) {
                double x0 = src[r0 + d], x1 = src[r1 + d], x2 = src[r2 + d], x3 = src[r3 + d];
                double y0 = src[r0 + d + 1], y1 = src[r1 + d + 1], y2 = src[r2 + d + 1], y3 = src[r3 + d + 1];
                double[] a = acc[d], c = acc[d + 1];
                for (int j = 0; j < tokens; j++) {
                    double p0 = w0[j], p1 = w1[j], p2 = w2[j], p3 = w3[j];
                    a[j] = a[j] + p0 * x0 + p1 * x1 + p2 * x2 + p3 * x3;
                    c[j] = c[j] + p0 * y0 + p1 * y1 + p2 * y2 + p3 * y3;
                }
            }
            for (; d < dh; d++) {
                double x0 = src[r0 + d], x1 = src[r1 + d], x2 = src[r2 + d], x3 = src[r3 + d];
                double[] a = acc[d];
                for (int j = 0; j < tokens; j++) {
                    a[j] = a[j] + w0[j] * x0 + w1[j] * x1 + w2[j] * x2 + w3[j] * x3;
                }
            }
        }
        for (; i < rows; i++) {
            double[] w0 = w[i];
            int r0 = start + i * rowStride;
            for (int d = 0; d < dh; d++) {
                double x0 = src[r0 + d];
                double[] a = acc[d];
                for (int j = 0; j < tokens; j++) {
                    a[j] = a[j] + w0[j] * x0;
                }
            }
        }
    }
}
