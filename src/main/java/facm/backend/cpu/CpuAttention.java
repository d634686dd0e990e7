package facm.backend.cpu;

import java.util.Arrays;

/**
 * The attention loops of {@link CpuNetworkOps} on raw arrays (shapes and aliasing are checked there): qk-RMSNorm with
 * RoPE (§3.2 Attention, §3.4) and softmax attention. Everything is accumulated in float64 and each output element is
 * rounded to fp32 once.
 */
final class CpuAttention {
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
    private static void rotatePairs(double[] row, float[] cos, float[] sin, int tableRow, float[] target, int dst,
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
}
