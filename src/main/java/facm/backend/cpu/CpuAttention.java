package facm.backend.cpu;

import java.util.Arrays;

/**
 * The attention loops of {@link CpuNetworkOps} and {@link CpuNetworkBackward} on raw arrays (shapes and aliasing are
 * checked there): qk-RMSNorm with RoPE (§3.2 Attention, §3.4) and softmax attention, each with its backward.
 * Everything is accumulated in float64 and each output element is rounded to fp32 once.
 */
final class CpuAttention {
    /**
     * Tokens (of all B·T) per block of the qk-norm weight-gradient sums: each block sums into its own partial, and the
     * partials are added in block order, so the result does not depend on the thread count.
     */
    private static final int TOKENS_PER_BLOCK = 64;

    /** Head tensors are [batch, heads, tokens, headDim], row-major. */
    record Layout(int batch, int heads, int tokens, int headDim) {
    }

    private CpuAttention() {
    }

    /**
     * qkv [B, T, 3·H·dh] → q, k, v [B, H, T, dh]. For q and k: ρ = (mean_dh(x²) + eps)^(−½), x ← x·ρ ⊙ w (when the
     * weights are given), then the interleaved-pair rotation x'[2p] = x[2p]·cos − x[2p+1]·sin,
     * x'[2p+1] = x[2p+1]·cos + x[2p]·sin with cos/sin from table entry (token, 2p) (when the tables are given).
     * rstd [B, T, 2, H] receives ρ of q (index 0) and k (index 1). Work is split over tokens, each of which writes
     * its own rows of q, k, v and rstd.
     */
    static void qkNormRope(ParallelRanges par, Layout l, float[] qkv, float[] qWeight, float[] kWeight, float eps,
                           float[] cos, float[] sin, float[] q, float[] k, float[] v, float[] rstd) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        int width = 3 * heads * dh;
        par.forRange((long) l.batch() * tokens, CpuNetworkOps.grain(3L * width), (s, e) -> {
            double[] row = new double[dh];
            for (int n = (int) s; n < e; n++) {
                int b = n / tokens, t = n % tokens;
                for (int part = 0; part < 3; part++) {
                    float[] target = part == 0 ? q : part == 1 ? k : v;
                    for (int h = 0; h < heads; h++) {
                        int src = n * width + (part * heads + h) * dh;
                        int dst = ((b * heads + h) * tokens + t) * dh;
                        if (part == 2) {
                            System.arraycopy(qkv, src, v, dst, dh);
                            continue;
                        }
                        float[] weight = part == 0 ? qWeight : kWeight;
                        if (weight != null) {
                            double sumSquares = 0;
                            for (int j = 0; j < dh; j++) {
                                double x = qkv[src + j];
                                sumSquares += x * x;
                            }
                            double rho = 1.0 / Math.sqrt(sumSquares / dh + eps);
                            if (rstd != null) {
                                rstd[(n * 2 + part) * heads + h] = (float) rho;
                            }
                            for (int j = 0; j < dh; j++) {
                                row[j] = qkv[src + j] * rho * weight[j];
                            }
                        } else {
                            for (int j = 0; j < dh; j++) {
                                row[j] = qkv[src + j];
                            }
                        }
                        if (cos != null) {
                            rotatePairs(row, cos, sin, t * dh, target, dst, dh);
                        } else {
                            for (int j = 0; j < dh; j++) {
                                target[dst + j] = (float) row[j];
                            }
                        }
                    }
                }
            }
        });
    }

    /** RoPE on interleaved pairs (2p, 2p+1), both rotated by the angle of table entry {@code tableRow + 2p}. */
    static void rotatePairs(double[] row, float[] cos, float[] sin, int tableRow, float[] target, int dst,
                                    int dh) {
        for (int j = 0; j < dh; j += 2) {
            double c = cos[tableRow + j], s = sin[tableRow + j];
            double even = row[j], odd = row[j + 1];
            target[dst + j] = (float) (even * c - odd * s);
            target[dst + j + 1] = (float) (odd * c + even * s);
        }
    }

    /**
     * O = softmax(q kᵀ·scale) v per (batch, head), one query row at a time: the row's scores go to a per-task buffer,
     * the softmax is shifted by the row maximum, and out [B, T, H·dh] gets Σ_j p_j v_j / Σ_j p_j. lse [B, H, T]
     * receives log Σ_j exp(s_j − max) + max. Work is split over (batch, head, query) rows, each of which writes its own
     * slice of out and one lse value.
     */
    static void attention(ParallelRanges par, Layout l, float[] q, float[] k, float[] v, float scale, float[] out,
                          float[] lse) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        long rows = (long) l.batch() * heads * tokens;
        par.forRange(rows, CpuNetworkOps.grain(2L * tokens * dh), (s, e) -> {
            double[] scores = new double[tokens];
            double[] query = new double[dh];
            double[] acc = new double[dh];
            for (int r = (int) s; r < e; r++) {
                int bh = r / tokens, i = r % tokens;
                int kvBase = bh * tokens * dh;
                for (int d = 0; d < dh; d++) {
                    query[d] = q[r * dh + d];
                }
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < tokens; j++) {
                    int key = kvBase + j * dh;
                    double dot = 0;
                    for (int d = 0; d < dh; d++) {
                        dot += query[d] * k[key + d];
                    }
                    scores[j] = dot * scale;
                    max = Math.max(max, scores[j]);
                }
                Arrays.fill(acc, 0);
                double sum = 0;
                for (int j = 0; j < tokens; j++) {
                    double p = Math.exp(scores[j] - max);
                    sum += p;
                    int value = kvBase + j * dh;
                    for (int d = 0; d < dh; d++) {
                        acc[d] += p * v[value + d];
                    }
                }
                int b = bh / heads, h = bh % heads;
                int dst = ((b * tokens + i) * heads + h) * dh;
                for (int d = 0; d < dh; d++) {
                    out[dst + d] = (float) (acc[d] / sum);
                }
                if (lse != null) {
                    lse[r] = (float) (Math.log(sum) + max);
                }
            }
        });
    }

    /**
     * Backward of {@link #qkNormRope}, per token and head: the rotation transposed,
     * gz[2p] = gy[2p]·cos + gy[2p+1]·sin, gz[2p+1] = gy[2p+1]·cos − gy[2p]·sin; then with n = x·ρ (saved ρ) the
     * RMSNorm backward gx = ρ·(g − n·mean_dh(g·n)), g = gz ⊙ w, and the weight gradient Σ gz·n. v's gradient is
     * copied. gradQkv (may be null) is overwritten; gradQWeight/gradKWeight (may be null) accumulate.
     */
    static void qkNormRopeBackward(ParallelRanges par, Layout l, float[] qkv, float[] qWeight, float[] kWeight,
                                   float[] cos, float[] sin, float[] rstd, float[] gradQ, float[] gradK,
                                   float[] gradV, float[] gradQkv, float[] gradQWeight, float[] gradKWeight) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        int width = 3 * heads * dh;
        int all = l.batch() * tokens;
        boolean weightGrads = gradQWeight != null || gradKWeight != null;
        if (gradQkv == null && !weightGrads) {
            return;
        }
        int blocks = (all + TOKENS_PER_BLOCK - 1) / TOKENS_PER_BLOCK;
        double[] partials = weightGrads ? new double[blocks * 2 * dh] : null;
        par.forRange(blocks, CpuNetworkOps.grain(3L * TOKENS_PER_BLOCK * width), (s, e) -> {
            double[] gz = new double[dh];
            for (int block = (int) s; block < e; block++) {
                int end = Math.min(all, (block + 1) * TOKENS_PER_BLOCK);
                for (int n = block * TOKENS_PER_BLOCK; n < end; n++) {
                    int b = n / tokens, t = n % tokens;
                    for (int part = 0; part < 3; part++) {
                        float[] grad = part == 0 ? gradQ : part == 1 ? gradK : gradV;
                        float[] weight = part == 0 ? qWeight : kWeight;
                        for (int h = 0; h < heads; h++) {
                            int src = n * width + (part * heads + h) * dh;
                            int headRow = ((b * heads + h) * tokens + t) * dh;
                            if (part == 2) {
                                if (gradQkv != null) {
                                    System.arraycopy(gradV, headRow, gradQkv, src, dh);
                                }
                                continue;
                            }
                            unrotatePairs(grad, headRow, cos, sin, t * dh, gz, dh);
                            if (weight == null) {
                                for (int j = 0; j < dh; j++) {
                                    gradQkv[src + j] = (float) gz[j];
                                }
                                continue;
                            }
                            double rho = rstd[(n * 2 + part) * heads + h];
                            double dot = 0;
                            int partial = (block * 2 + part) * dh;
                            for (int j = 0; j < dh; j++) {
                                double normed = qkv[src + j] * rho;
                                dot += gz[j] * weight[j] * normed;
                                if (partials != null) {
                                    partials[partial + j] += gz[j] * normed;
                                }
                            }
                            if (gradQkv != null) {
                                double mean = dot / dh;
                                for (int j = 0; j < dh; j++) {
                                    gradQkv[src + j] = (float) (rho * (gz[j] * weight[j] - qkv[src + j] * rho * mean));
                                }
                            }
                        }
                    }
                }
            }
        });
        if (weightGrads) {
            for (int part = 0; part < 2; part++) {
                float[] target = part == 0 ? gradQWeight : gradKWeight;
                if (target == null) {
                    continue;
                }
                for (int j = 0; j < dh; j++) {
                    double sum = 0;
                    for (int block = 0; block < blocks; block++) {
                        sum += partials[(block * 2 + part) * dh + j];
                    }
                    target[j] = (float) (target[j] + sum);
                }
            }
        }
    }

    /** gz = Rᵀ gy for the RoPE rotation R of table entry (token, 2p) per pair; no tables: gz = gy. */
    private static void unrotatePairs(float[] grad, int headRow, float[] cos, float[] sin, int tableRow, double[] gz,
                                      int dh) {
        if (cos == null) {
            for (int j = 0; j < dh; j++) {
                gz[j] = grad[headRow + j];
            }
            return;
        }
        for (int j = 0; j < dh; j += 2) {
            double c = cos[tableRow + j], s = sin[tableRow + j];
            double even = grad[headRow + j], odd = grad[headRow + j + 1];
            gz[j] = even * c + odd * s;
            gz[j + 1] = odd * c - even * s;
        }
    }

    /**
     * Backward of {@link #attention} recomputing P from the saved lse, one query row at a time (flash style, no score
     * matrix): D_i = dO_i·O_i, P_ij = exp(scale·q_i·k_j − lse_i), dS_ij = P_ij·(dO_i·v_j − D_i); gradQ_i =
     * scale·Σ_j dS_ij k_j, gradK_j = scale·Σ_i dS_ij q_i, gradV_j = Σ_i P_ij dO_i. Work is split over (batch, head):
     * each task owns its head's key/value gradients and adds the query rows in order. Null gradients are skipped.
     */
    static void attentionBackward(ParallelRanges par, Layout l, float[] q, float[] k, float[] v, float scale,
                                  float[] out, float[] lse, float[] gradOut, float[] gradQ, float[] gradK,
                                  float[] gradV) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        if (gradQ == null && gradK == null && gradV == null) {
            return;
        }
        par.forRange((long) l.batch() * heads, CpuNetworkOps.grain(5L * tokens * tokens * dh), (s, e) -> {
            double[] query = new double[dh], dO = new double[dh], accQ = new double[dh];
            double[] accK = new double[tokens * dh], accV = new double[tokens * dh];
            for (int bh = (int) s; bh < e; bh++) {
                int b = bh / heads, h = bh % heads;
                int kvBase = bh * tokens * dh;
                Arrays.fill(accK, 0);
                Arrays.fill(accV, 0);
                for (int i = 0; i < tokens; i++) {
                    int row = bh * tokens + i;
                    int tokenRow = ((b * tokens + i) * heads + h) * dh;
                    double rowDot = 0;
                    for (int d = 0; d < dh; d++) {
                        query[d] = q[row * dh + d];
                        dO[d] = gradOut[tokenRow + d];
                        rowDot += dO[d] * out[tokenRow + d];
                    }
                    double rowLse = lse[row];
                    Arrays.fill(accQ, 0);
                    for (int j = 0; j < tokens; j++) {
                        int key = kvBase + j * dh;
                        double score = 0, dP = 0;
                        for (int d = 0; d < dh; d++) {
                            score += query[d] * k[key + d];
                            dP += dO[d] * v[key + d];
                        }
                        double p = Math.exp(score * scale - rowLse);
                        double dS = p * (dP - rowDot) * scale;
                        for (int d = 0; d < dh; d++) {
                            accV[j * dh + d] += p * dO[d];
                            accK[j * dh + d] += dS * query[d];
                            accQ[d] += dS * k[key + d];
                        }
                    }
                    if (gradQ != null) {
                        for (int d = 0; d < dh; d++) {
                            gradQ[row * dh + d] = (float) accQ[d];
                        }
                    }
                }
                for (int n = 0; n < tokens * dh; n++) {
                    if (gradK != null) {
                        gradK[kvBase + n] = (float) accK[n];
                    }
                    if (gradV != null) {
                        gradV[kvBase + n] = (float) accV[n];
                    }
                }
            }
        });
    }
}
