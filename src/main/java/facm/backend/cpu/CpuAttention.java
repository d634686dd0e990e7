package facm.backend.cpu;

import facm.tensor.Bf16;
import facm.tensor.DType;

import java.util.Arrays;

/**
 * The attention loops of {@link CpuNetworkOps} and {@link CpuNetworkBackward} on raw arrays (shapes and aliasing are
 * checked there): qk-RMSNorm with RoPE (§3.2 Attention, §3.4) with its backward, and the softmax attention forward
 * (its backward is {@link CpuAttentionBackward}, its JVP {@link CpuAttentionJvp}, the blocked loops all three use
 * {@link AttentionBlocks}). Everything is accumulated in float64 and each output element is rounded to fp32 once.
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
     * The values of an attention input (q, k, v, a tangent, out or gradOut read by the backward): an F32 tensor's live
     * array, a BF16 tensor's values widened to a new float array (exact), null for null. The loops then compute in
     * float64 as for F32, so the CPU stays the reference of the bf16 tensor-core kernels on the same values.
     */
    static float[] inputFloats(CpuTensor t) {
        if (t == null) {
            return null;
        }
        return t.dtype() == DType.BF16 ? Bf16.toFloats(t.bf16()) : t.f32();
    }

    /** Where an attention output is computed: an F32 tensor's live array, for BF16 a scratch array. */
    static float[] outputFloats(CpuTensor t) {
        return t.dtype() == DType.BF16 ? new float[t.bf16().length] : t.f32();
    }

    /** Completes an output computed into {@link #outputFloats}: a BF16 tensor receives the values rounded to bf16. */
    static void storeOutput(CpuTensor t, float[] values) {
        if (t.dtype() == DType.BF16) {
            short[] bits = t.bf16();
            for (int i = 0; i < bits.length; i++) {
                bits[i] = Bf16.fromFloat(values[i]);
            }
        }
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
     * O = softmax(q kᵀ·scale) v per (batch, head), in blocks of {@link AttentionBlocks#ROWS} query rows (the loops and
     * why they are laid out so: {@link AttentionBlocks}): the block's scores q_i·k_j·scale, the row maximum, p = e^(s −
     * max), then out [B, T, H·dh] gets Σ_j p_j v_j / Σ_j p_j and lse [B, H, T] log Σ_j p_j + max. Every sum runs over
     * j (or d) in increasing order, as a one-row-at-a-time loop would. Work is split over (batch, head, block), each of
     * which writes its own rows of out and lse.
     */
    static void attention(ParallelRanges par, Layout l, float[] q, float[] k, float[] v, float scale, float[] out,
                          float[] lse) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        int blocks = (tokens + AttentionBlocks.ROWS - 1) / AttentionBlocks.ROWS;
        long units = (long) l.batch() * heads * blocks;
        par.forRange(units, CpuNetworkOps.grain(2L * tokens * dh * AttentionBlocks.ROWS), (s, e) -> {
            AttentionBlocks.Scratch w = new AttentionBlocks.Scratch(tokens, dh);
            for (long u = s; u < e; u++) {
                int bh = (int) (u / blocks), i0 = (int) (u % blocks) * AttentionBlocks.ROWS;
                int rows = Math.min(AttentionBlocks.ROWS, tokens - i0);
                int kvBase = bh * tokens * dh;
                AttentionBlocks.loadTransposed(q, kvBase + i0 * dh, dh, rows, dh, w.queries);
                AttentionBlocks.dots(k, kvBase, tokens, dh, w.queries, rows, w.scores, false);
                AttentionBlocks.softmaxNumerators(w.scores, tokens, rows, scale, w.rowMax, w.exp);
                AttentionBlocks.weightedValues(w.scores, v, kvBase, tokens, dh, rows, w.rowSum, w.acc);
                writeRows(l, bh, i0, rows, w.acc, w.rowSum, out);
                if (lse != null) {
                    for (int i = 0; i < rows; i++) {
                        lse[bh * tokens + i0 + i] = (float) (Math.log(w.rowSum[i]) + w.rowMax[i]);
                    }
                }
            }
        });
    }

    /** out[b, i0 + i, h·dh + d] = acc[d][i] / rowSum[i] for the block's rows (token-major output). */
    static void writeRows(Layout l, int bh, int i0, int rows, double[][] acc, double[] rowSum, float[] out) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        int b = bh / heads, h = bh % heads;
        for (int i = 0; i < rows; i++) {
            int dst = ((b * tokens + i0 + i) * heads + h) * dh;
            for (int d = 0; d < dh; d++) {
                out[dst + d] = (float) (acc[d][i] / rowSum[i]);
            }
        }
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
}
