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
     * Attention primal and tangent in one pass, one query row at a time (§6.4). The primal statements are those of
     * {@link CpuAttention#attention} in the same order (scores, row max, p = exp(s − max), Σp, Σ p·v), so out and
     * lse are bit-identical to the forward op's. Alongside: Ṡ_j = scale·(q̇·k_j + q·k̇_j) into a second row buffer,
     * and the accumulators Σ_j p_j Ṡ_j and Σ_j p_j (v̇_j + Ṡ_j v_j); then with ℓ = Σp, μ = Σ p Ṡ / ℓ,
     * outDot = Σ p (v̇ + Ṡ v) / ℓ − μ·O, O taken in float64 (before rounding). qDot, kDot, vDot may be null (zero).
     * Work is split over (batch, head, query) rows, each of which writes its own slice of out/outDot and one lse value.
     */
    static void attention(ParallelRanges par, CpuAttention.Layout l, float[] q, float[] k, float[] v, float[] qDot,
                          float[] kDot, float[] vDot, float scale, float[] out, float[] outDot, float[] lse) {
        int heads = l.heads(), tokens = l.tokens(), dh = l.headDim();
        long rows = (long) l.batch() * heads * tokens;
        par.forRange(rows, CpuNetworkOps.grain(5L * tokens * dh), (s, e) -> {
            double[] scores = new double[tokens], scoresDot = new double[tokens];
            double[] query = new double[dh], queryDot = new double[dh];
            double[] acc = new double[dh], accDot = new double[dh];
            for (int r = (int) s; r < e; r++) {
                int bh = r / tokens, i = r % tokens;
                int kvBase = bh * tokens * dh;
                for (int d = 0; d < dh; d++) {
                    query[d] = q[r * dh + d];
                    queryDot[d] = qDot == null ? 0.0 : qDot[r * dh + d];
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
                    double dotDot = 0;
                    if (qDot != null) {
                        for (int d = 0; d < dh; d++) {
                            dotDot += queryDot[d] * k[key + d];
                        }
                    }
                    if (kDot != null) {
                        for (int d = 0; d < dh; d++) {
                            dotDot += query[d] * kDot[key + d];
                        }
                    }
                    scoresDot[j] = dotDot * scale;
                }
                Arrays.fill(acc, 0);
                Arrays.fill(accDot, 0);
                double sum = 0, weightedScoreDot = 0;
                for (int j = 0; j < tokens; j++) {
                    double p = Math.exp(scores[j] - max);
                    sum += p;
                    int value = kvBase + j * dh;
                    for (int d = 0; d < dh; d++) {
                        acc[d] += p * v[value + d];
                    }
                    double sDot = scoresDot[j];
                    weightedScoreDot += p * sDot;
                    for (int d = 0; d < dh; d++) {
                        double valueDot = vDot == null ? 0.0 : vDot[value + d];
                        accDot[d] += p * (valueDot + sDot * v[value + d]);
                    }
                }
                int b = bh / heads, h = bh % heads;
                int dst = ((b * tokens + i) * heads + h) * dh;
                double mu = weightedScoreDot / sum;
                for (int d = 0; d < dh; d++) {
                    out[dst + d] = (float) (acc[d] / sum);
                    outDot[dst + d] = (float) (accDot[d] / sum - mu * (acc[d] / sum));
                }
                if (lse != null) {
                    lse[r] = (float) (Math.log(sum) + max);
                }
            }
        });
    }
}
