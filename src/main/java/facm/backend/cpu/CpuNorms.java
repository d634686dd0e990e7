package facm.backend.cpu;

import java.util.Arrays;

/**
 * The RMSNorm/adaLN loops of {@link CpuNetworkOps}, {@link CpuNetworkBackward} and {@link CpuNetworkJvp} on raw
 * arrays (shapes are checked there). Statistics and every output element are computed in float64 and rounded to fp32 once.
 */
final class CpuNorms {
    /**
     * Columns per task of a parameter-gradient pass. Each task owns these columns of the parameter gradients and walks
     * all rows in order, so every sum has one fixed order whatever the thread count.
     */
    private static final int COLUMNS_PER_TASK = 64;

    /** rows of width d; row r belongs to batch r / tokens (without mod, tokens = rows: one batch). */
    record NormRows(int rows, int tokens, int d) {
    }

    private CpuNorms() {
    }

    /**
     * Rows of length d: out = x·ρ ⊙ w ⊙ (1 + scale_b) + shift_b with ρ = (mean(x²) + eps)^(−½) (§3.2 block). Row r
     * belongs to batch r / tokens; {@code mod} (null: plain RMSNorm) holds per batch modWidth values, of which
     * shift and scale are the chunks {@code [c·d, (c+1)·d)}. {@code out} may be {@code x}: a row is read in full for
     * its statistic before any of it is written, and then each element is read before it is written.
     */
    static void rmsNormModulate(ParallelRanges par, float[] x, float[] w, float eps, float[] mod, int modWidth,
                                int shiftChunk, int scaleChunk, int rows, int tokens, int d, float[] out,
                                float[] rstd) {
        par.forRange(rows, CpuNetworkOps.grain(3L * d), (s, e) -> {
            double[] xr = new double[d], y = new double[d];
            for (int r = (int) s; r < e; r++) {
                int base = r * d;
                for (int j = 0; j < d; j++) {
                    xr[j] = x[base + j];
                }
                double sumSquares = 0;
                for (int j = 0; j < d; j++) {
                    sumSquares += xr[j] * xr[j];
                }
                double rho = 1.0 / Math.sqrt(sumSquares / d + eps);
                if (rstd != null) {
                    rstd[r] = (float) rho;
                }
                if (mod == null) {
                    for (int j = 0; j < d; j++) {
                        y[j] = xr[j] * rho * w[j];
                    }
                } else {
                    int batchBase = (r / tokens) * modWidth;
                    int shift = batchBase + shiftChunk * d;
                    int scale = batchBase + scaleChunk * d;
                    for (int j = 0; j < d; j++) {
                        y[j] = xr[j] * rho * w[j] * (1.0 + mod[scale + j]) + mod[shift + j];
                    }
                }
                store(y, out, base, d);
            }
        });
    }

    /**
     * h[b,t,:] += gate_b ⊙ a[b,t,:] with gate_b = chunk gateChunk of mod row b (§3.2 block). {@code a} may be
     * {@code h}: each element is read before it is written.
     */
    static void gatedResidual(ParallelRanges par, float[] h, float[] a, float[] mod, int modWidth, int gateChunk,
                              int tokens, int d) {
        int rows = h.length / d;
        par.forRange(rows, CpuNetworkOps.grain(d), (s, e) -> {
            double[] g = new double[d];
            int staged = -1;
            for (int r = (int) s; r < e; r++) {
                int base = r * d;
                staged = stageGate(mod, modWidth, gateChunk, r / tokens, staged, d, g);
                for (int j = 0; j < d; j++) {
                    h[base + j] = (float) (h[base + j] + g[j] * a[base + j]);
                }
            }
        });
    }

    /**
     * g ← chunk gateChunk of mod row {@code batch} (widened), unless {@code staged} says it already holds it; returns
     * the batch now staged. Loops that read the gate from this row instead of from mod at an offset index all their
     * float arrays alike, which lets the JIT vectorize them (see {@link CpuGemm}).
     */
    private static int stageGate(float[] mod, int modWidth, int gateChunk, int batch, int staged, int d, double[] g) {
        if (batch != staged) {
            int gate = batch * modWidth + gateChunk * d;
            for (int j = 0; j < d; j++) {
                g[j] = mod[gate + j];
            }
        }
        return batch;
    }

    /** dst[at + j] = (float) row[j] for j &lt; d. */
    private static void store(double[] row, float[] dst, int at, int d) {
        for (int j = 0; j < d; j++) {
            dst[at + j] = (float) row[j];
        }
    }

    /**
     * Tangent of {@link #rmsNormModulate} (NetworkOps#rmsNormModulateJvp, facm-spec §6.2): with n = x·ρ and
     * s = 1 + scale_b, outDot = w ⊙ ρ(ẋ − x·ρ²·mean_d(x ⊙ ẋ)) ⊙ s + n ⊙ w ⊙ scaleDot_b + shiftDot_b, everything in
     * float64 per row (ρ recomputed in float64, not read back from fp32). xDot and modDot may be null (zero tangent).
     * Writes only outDot, which may be xDot: each row is read in full for mean(x ⊙ ẋ) before any of it is written.
     */
    static void rmsNormModulateTangent(ParallelRanges par, float[] x, float[] xDot, float[] w, float eps, float[] mod,
                                       float[] modDot, int modWidth, int shiftChunk, int scaleChunk, int rows,
                                       int tokens, int d, float[] outDot) {
        par.forRange(rows, CpuNetworkOps.grain(5L * d), (s, e) -> {
            double[] xr = new double[d], xd = new double[d], y = new double[d];
            for (int r = (int) s; r < e; r++) {
                int base = r * d;
                for (int j = 0; j < d; j++) {
                    xr[j] = x[base + j];
                }
                if (xDot != null) {
                    for (int j = 0; j < d; j++) {
                        xd[j] = xDot[base + j];
                    }
                }
                double sumSquares = 0, crossSum = 0;
                for (int j = 0; j < d; j++) {
                    double xj = xr[j];
                    sumSquares += xj * xj;
                    if (xDot != null) {
                        crossSum += xj * xd[j];
                    }
                }
                double rho = 1.0 / Math.sqrt(sumSquares / d + eps);
                // ρ̇ = −ρ³·mean(x ⊙ ẋ), so (x·ρ)˙ = ρ(ẋ − x·ρ²·mean(x ⊙ ẋ)).
                double rhoDotOverRho = -rho * rho * crossSum / d;
                int batchBase = mod == null ? 0 : (r / tokens) * modWidth;
                int shift = batchBase + shiftChunk * d, scale = batchBase + scaleChunk * d;
                // xd is all 0.0 when xDot is null (never written), the per-element rule's zero tangent.
                for (int j = 0; j < d; j++) {
                    y[j] = rho * (xd[j] + xr[j] * rhoDotOverRho) * w[j];
                }
                if (mod != null) {
                    for (int j = 0; j < d; j++) {
                        y[j] = y[j] * (1.0 + mod[scale + j]);
                    }
                }
                if (modDot != null) {
                    for (int j = 0; j < d; j++) {
                        y[j] += xr[j] * rho * w[j] * modDot[scale + j] + modDot[shift + j];
                    }
                }
                store(y, outDot, base, d);
            }
        });
    }

    /**
     * Tangent of {@link #gatedResidual}: hDot += gateDot_b ⊙ a + gate_b ⊙ aDot (aDot, modDot may be null: zero
     * tangent), summed in float64 and rounded once. aDot may be hDot: each element is read before it is written.
     */
    static void gatedResidualTangent(ParallelRanges par, float[] hDot, float[] a, float[] aDot, float[] mod,
                                     float[] modDot, int modWidth, int gateChunk, int tokens, int d) {
        if (modDot == null && aDot == null) {
            return; // ḣ += 0
        }
        int rows = hDot.length / d;
        par.forRange(rows, CpuNetworkOps.grain(2L * d), (s, e) -> {
            double[] g = new double[d], gDot = new double[d];
            int staged = -1, stagedDot = -1;
            for (int r = (int) s; r < e; r++) {
                int base = r * d;
                int batch = r / tokens;
                if (modDot != null && aDot != null) {
                    stagedDot = stageGate(modDot, modWidth, gateChunk, batch, stagedDot, d, gDot);
                    staged = stageGate(mod, modWidth, gateChunk, batch, staged, d, g);
                    for (int j = 0; j < d; j++) {
                        hDot[base + j] = (float) (hDot[base + j] + gDot[j] * a[base + j] + g[j] * aDot[base + j]);
                    }
                } else if (modDot != null) {
                    stagedDot = stageGate(modDot, modWidth, gateChunk, batch, stagedDot, d, gDot);
                    for (int j = 0; j < d; j++) {
                        hDot[base + j] = (float) (hDot[base + j] + gDot[j] * a[base + j]);
                    }
                } else {
                    staged = stageGate(mod, modWidth, gateChunk, batch, staged, d, g);
                    for (int j = 0; j < d; j++) {
                        hDot[base + j] = (float) (hDot[base + j] + g[j] * aDot[base + j]);
                    }
                }
            }
        });
    }

    /**
     * Backward of {@link #rmsNormModulate} with the saved ρ (NetworkOps#rmsNormModulateBackward): with n = x·ρ and
     * s = 1 + scale_b (1 without mod), gradWeight += Σ_rows gradOut·n·s, gradMod[scale] += Σ_tokens gradOut·n·w,
     * gradMod[shift] += Σ_tokens gradOut, and gradX = ρ·(g − n·mean_d(g·n)) with g = gradOut·w·s. The parameter
     * gradients are summed first (split over column blocks), then gradX row by row, so gradX may be gradOut.
     */
    static void rmsNormModulateBackward(ParallelRanges par, NormRows n, float[] x, float[] w, float[] mod, int modWidth,
                                        int shiftChunk, int scaleChunk, float[] rstd, float[] gradOut, float[] gradX,
                                        float[] gradWeight, float[] gradMod) {
        int rows = n.rows(), tokens = n.tokens(), d = n.d();
        if (gradWeight != null || gradMod != null) {
            int blocks = (d + COLUMNS_PER_TASK - 1) / COLUMNS_PER_TASK;
            par.forRange(blocks, CpuNetworkOps.grain(4L * rows * COLUMNS_PER_TASK), (s, e) -> {
                double[] weightSum = new double[COLUMNS_PER_TASK];
                double[] shiftSum = new double[COLUMNS_PER_TASK], scaleSum = new double[COLUMNS_PER_TASK];
                for (int block = (int) s; block < e; block++) {
                    int j0 = block * COLUMNS_PER_TASK, j1 = Math.min(d, j0 + COLUMNS_PER_TASK);
                    Arrays.fill(weightSum, 0);
                    Arrays.fill(shiftSum, 0);
                    Arrays.fill(scaleSum, 0);
                    for (int r = 0; r < rows; r++) {
                        int base = r * d;
                        double rho = rstd[r];
                        int batchBase = mod == null ? 0 : (r / tokens) * modWidth;
                        int scale = batchBase + scaleChunk * d, shift = batchBase + shiftChunk * d;
                        for (int j = j0; j < j1; j++) {
                            double g = gradOut[base + j];
                            double normed = x[base + j] * rho;
                            double s1 = mod == null ? 1.0 : 1.0 + mod[scale + j];
                            weightSum[j - j0] += g * normed * s1;
                            scaleSum[j - j0] += g * normed * w[j];
                            shiftSum[j - j0] += g;
                        }
                        if (gradMod != null && r % tokens == tokens - 1) {
                            for (int j = j0; j < j1; j++) {
                                gradMod[scale + j] = (float) (gradMod[scale + j] + scaleSum[j - j0]);
                                gradMod[shift + j] = (float) (gradMod[shift + j] + shiftSum[j - j0]);
                            }
                            Arrays.fill(shiftSum, 0);
                            Arrays.fill(scaleSum, 0);
                        }
                    }
                    if (gradWeight != null) {
                        for (int j = j0; j < j1; j++) {
                            gradWeight[j] = (float) (gradWeight[j] + weightSum[j - j0]);
                        }
                    }
                }
            });
        }
        if (gradX != null) {
            par.forRange(rows, CpuNetworkOps.grain(4L * d), (s, e) -> {
                double[] g = new double[d];
                for (int r = (int) s; r < e; r++) {
                    int base = r * d;
                    double rho = rstd[r];
                    int scale = mod == null ? 0 : (r / tokens) * modWidth + scaleChunk * d;
                    if (mod == null) {
                        for (int j = 0; j < d; j++) {
                            g[j] = gradOut[base + j] * w[j];
                        }
                    } else {
                        for (int j = 0; j < d; j++) {
                            g[j] = gradOut[base + j] * w[j] * (1.0 + mod[scale + j]);
                        }
                    }
                    double dot = 0;
                    for (int j = 0; j < d; j++) {
                        dot += g[j] * x[base + j] * rho;
                    }
                    double mean = dot / d;
                    for (int j = 0; j < d; j++) {
                        gradX[base + j] = (float) (rho * (g[j] - x[base + j] * rho * mean));
                    }
                }
            });
        }
    }

    /**
     * Backward of {@link #gatedResidual}: gradMod[gate]_b += Σ_tokens a·gradH (split over batch rows and column
     * blocks, tokens summed in order), then gradA = gate_b·gradH, so gradA may be gradH.
     */
    static void gatedResidualBackward(ParallelRanges par, NormRows n, float[] a, float[] mod, int modWidth,
                                      int gateChunk, float[] gradH, float[] gradA, float[] gradMod) {
        int rows = n.rows(), tokens = n.tokens(), d = n.d();
        if (rows == 0) {
            return;
        }
        if (gradMod != null) {
            int blocks = (d + COLUMNS_PER_TASK - 1) / COLUMNS_PER_TASK;
            par.forRange((long) (rows / tokens) * blocks, CpuNetworkOps.grain(2L * tokens * COLUMNS_PER_TASK),
                    (s, e) -> {
                double[] sum = new double[COLUMNS_PER_TASK];
                for (long task = s; task < e; task++) {
                    int b = (int) (task / blocks), j0 = (int) (task % blocks) * COLUMNS_PER_TASK;
                    int j1 = Math.min(d, j0 + COLUMNS_PER_TASK);
                    Arrays.fill(sum, 0);
                    for (int t = 0; t < tokens; t++) {
                        int base = (b * tokens + t) * d;
                        for (int j = j0; j < j1; j++) {
                            sum[j - j0] += (double) a[base + j] * gradH[base + j];
                        }
                    }
                    int gate = b * modWidth + gateChunk * d;
                    for (int j = j0; j < j1; j++) {
                        gradMod[gate + j] = (float) (gradMod[gate + j] + sum[j - j0]);
                    }
                }
            });
        }
        if (gradA != null) {
            par.forRange(rows, CpuNetworkOps.grain(d), (s, e) -> {
                for (int r = (int) s; r < e; r++) {
                    int base = r * d;
                    int gate = (r / tokens) * modWidth + gateChunk * d;
                    for (int j = 0; j < d; j++) {
                        gradA[base + j] = (float) ((double) mod[gate + j] * gradH[base + j]);
                    }
                }
            });
        }
    }
}
