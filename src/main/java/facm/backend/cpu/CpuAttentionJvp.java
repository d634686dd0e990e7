package facm.backend.cpu;

import java.util.Arrays;

/**
 * The forward-mode (JVP) loops of the attention pair on raw arrays (shapes and aliasing are checked in
 * {@link CpuNetworkJvp}): the tangent of qk-RMSNorm with RoPE, and the fused attention primal + tangent of
 * facm-spec §6.4. Tangents are accumulated in float64 per row and rounded to fp32 once; a null tangent input is zero.
 */
final class CpuAttentionJvp {
    private CpuAttentionJvp() {
    }

    /**
     * Tangent of {@link CpuAttention#qkNormRope}: qDot, kDot [B,H,T,dh] = R·(w ⊙ ρ(ẋ − x·ρ²·mean_dh(x ⊙ ẋ))) with the
     * same RoPE rotation R as the primal (ẋ itself when qk-norm is off), vDot = the v part of qkvDot. qkvDot null: all
     * three are zero. Writes only the three tangent outputs (the primal is {@link CpuAttention#qkNormRope}'s job).
     */
    static void qkNormRopeTangent(ParallelRanges par, CpuAttention.Layout l, float[] qkv, float[] qkvDot,
                                  float[] qWeight, float[] kWeight, float eps, float[] cos, float[] sin, float[] qDot,
                                  float[] kDot, float[] vDot) {
        if (qkvDot == null) {
            Arrays.fill(qDot, 0f);
            Arrays.fill(kDot, 0f);
            Arrays.fill(vDot, 0f);
            return;
        }
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        int width = 3 * heads * dh;
        par.forRange((long) l.batch() * tokens, CpuNetworkOps.grain(5L * width), (s, e) -> {
            double[] row = new double[dh];
            for (int n = (int) s; n < e; n++) {
                int b = n / tokens, t = n % tokens;
                for (int part = 0; part < 3; part++) {
                    float[] target = part == 0 ? qDot : part == 1 ? kDot : vDot;
                    float[] weight = part == 0 ? qWeight : kWeight;
                    for (int h = 0; h < heads; h++) {
                        int src = n * width + (part * heads + h) * dh;
                        int dst = ((b * heads + h) * tokens + t) * dh;
                        if (part == 2) {
                            System.arraycopy(qkvDot, src, vDot, dst, dh);
                            continue;
                        }
                        if (weight != null) {
                            double sumSquares = 0, crossSum = 0;
                            for (int j = 0; j < dh; j++) {
                                double x = qkv[src + j];
                                sumSquares += x * x;
                                crossSum += x * qkvDot[src + j];
                            }
                            double rho = 1.0 / Math.sqrt(sumSquares / dh + eps);
                            double rhoDotOverRho = -rho * rho * crossSum / dh;
                            for (int j = 0; j < dh; j++) {
                                row[j] = rho * (qkvDot[src + j] + qkv[src + j] * rhoDotOverRho) * weight[j];
                            }
                        } else {
                            for (int j = 0; j < dh; j++) {
                                row[j] = qkvDot[src + j];
                            }
                        }
                        if (cos != null) {
                            // RoPE is linear in its input: the tangent turns by the same angles.
                            CpuAttention.rotatePairs(row, cos, sin, t * dh, target, dst, dh);
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

    /**
     * Attention primal and tangent in one pass (§6.4), in the query blocks of {@link CpuAttention#attention}. The
     * primal runs the forward op's loops in the same order ({@link AttentionBlocks}: scores, row max, p = e^(s − max),
     * Σp, Σ p·v), so out and lse are bit-identical to the forward op's. Alongside: Ṡ_j = scale·(q̇·k_j + q·k̇_j) into a
     * second score block, and the accumulators Σ_j p_j Ṡ_j and Σ_j p_j (v̇_j + Ṡ_j v_j); then with ℓ = Σp,
     * μ = Σ p Ṡ / ℓ, outDot = Σ p (v̇ + Ṡ v) / ℓ − μ·O, O taken in float64 (before rounding). qDot, kDot, vDot may be
     * null (zero). Work is split over (batch, head, query block), each of which writes its own rows of out/outDot and
     * lse.
     */
    static void attention(ParallelRanges par, CpuAttention.Layout l, float[] q, float[] k, float[] v, float[] qDot,
                          float[] kDot, float[] vDot, float scale, float[] out, float[] outDot, float[] lse) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        int rowsMax = AttentionBlocks.ROWS;
        int blocks = (tokens + rowsMax - 1) / rowsMax;
        long units = (long) l.batch() * heads * blocks;
        par.forRange(units, CpuNetworkOps.grain(5L * tokens * dh * rowsMax), (s, e) -> {
            AttentionBlocks.Scratch w = new AttentionBlocks.Scratch(tokens, dh);
            for (long u = s; u < e; u++) {
                int bh = (int) (u / blocks), i0 = (int) (u % blocks) * rowsMax;
                int rows = Math.min(rowsMax, tokens - i0);
                int kvBase = bh * tokens * dh;
                AttentionBlocks.loadTransposed(q, kvBase + i0 * dh, dh, rows, dh, w.queries);
                AttentionBlocks.dots(k, kvBase, tokens, dh, w.queries, rows, w.scores, false);
                // Ṡ/scale = q̇·k_j, then + q·k̇_j, one running sum per score as the per-row loop had.
                if (qDot != null) {
                    AttentionBlocks.loadTransposed(qDot, kvBase + i0 * dh, dh, rows, dh, w.queriesDot);
                    AttentionBlocks.dots(k, kvBase, tokens, dh, w.queriesDot, rows, w.second, false);
                }
                if (kDot != null) {
                    AttentionBlocks.dots(kDot, kvBase, tokens, dh, w.queries, rows, w.second, qDot != null);
                }
                for (int j = 0; j < tokens; j++) {
                    double[] sDot = w.second[j];
                    for (int i = 0; i < rows; i++) {
                        sDot[i] = (qDot == null && kDot == null ? 0.0 : sDot[i]) * scale;
                    }
                }
                AttentionBlocks.softmaxNumerators(w.scores, tokens, rows, scale, w.rowMax, w.exp);
                AttentionBlocks.weightedValues(w.scores, v, kvBase, tokens, dh, rows, w.rowSum, w.acc);
                tangentSums(w, v, vDot, kvBase, tokens, dh, rows);
                CpuAttention.writeRows(l, bh, i0, rows, w.acc, w.rowSum, out);
                writeTangentRows(l, bh, i0, rows, w, outDot);
                if (lse != null) {
                    for (int i = 0; i < rows; i++) {
                        lse[bh * tokens + i0 + i] = (float) (Math.log(w.rowSum[i]) + w.rowMax[i]);
                    }
                }
            }
        });
    }

    /**
     * rowExtra[i] = Σ_j p_ij Ṡ_ij and accDot[d][i] = Σ_j p_ij (v̇_jd + Ṡ_ij v_jd), over j in increasing order from
     * 0.0, with p in w.scores and Ṡ in w.second ([j][i]); a null vDot counts as 0.0.
     */
    private static void tangentSums(AttentionBlocks.Scratch w, float[] v, float[] vDot, int kvBase, int tokens,
                                    int dh, int rows) {
        Arrays.fill(w.rowExtra, 0, rows, 0.0);
        for (int d = 0; d < dh; d++) {
            Arrays.fill(w.accDot[d], 0, rows, 0.0);
        }
        for (int j = 0; j < tokens; j++) {
            double[] p = w.scores[j], sDot = w.second[j];
            for (int i = 0; i < rows; i++) {
                w.rowExtra[i] = w.rowExtra[i] + p[i] * sDot[i];
            }
            int value = kvBase + j * dh;
            int d = 0;
            for (; d + 2 <= dh; d += 2) {
                // Two head components per pass share the loads of p and Ṡ.
                double x = v[value + d], y = v[value + d + 1];
                double xDot = vDot == null ? 0.0 : vDot[value + d];
                double yDot = vDot == null ? 0.0 : vDot[value + d + 1];
                double[] a = w.accDot[d], c = w.accDot[d + 1];
                for (int i = 0; i < rows; i++) {
                    double pi = p[i], si = sDot[i];
                    a[i] = a[i] + pi * (xDot + si * x);
                    c[i] = c[i] + pi * (yDot + si * y);
                }
            }
            for (; d < dh; d++) {
                double x = v[value + d];
                double xDot = vDot == null ? 0.0 : vDot[value + d];
                double[] a = w.accDot[d];
                for (int i = 0; i < rows; i++) {
                    a[i] = a[i] + p[i] * (xDot + sDot[i] * x);
                }
            }
        }
    }

    /** outDot rows of the block: accDot/ℓ − μ·(acc/ℓ) with μ = rowExtra/ℓ, token-major like out. */
    private static void writeTangentRows(CpuAttention.Layout l, int bh, int i0, int rows, AttentionBlocks.Scratch w,
                                         float[] outDot) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        int b = bh / heads, h = bh % heads;
        for (int i = 0; i < rows; i++) {
            int dst = ((b * tokens + i0 + i) * heads + h) * dh;
            double sum = w.rowSum[i];
            double mu = w.rowExtra[i] / sum;
            for (int d = 0; d < dh; d++) {
                double acc = w.acc[d][i];
                outDot[dst + d] = (float) (w.accDot[d][i] / sum - mu * (acc / sum));
            }
        }
    }
}
