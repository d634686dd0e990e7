package facm.backend.cpu;

/**
 * The RMSNorm/adaLN loops of {@link CpuNetworkOps} on raw arrays (shapes are checked there). Statistics and every
 * output element are computed in float64 and rounded to fp32 once.
 */
final class CpuNorms {
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
            for (int r = (int) s; r < e; r++) {
                int base = r * d;
                double sumSquares = 0;
                for (int j = 0; j < d; j++) {
                    double xj = x[base + j];
                    sumSquares += xj * xj;
                }
                double rho = 1.0 / Math.sqrt(sumSquares / d + eps);
                if (rstd != null) {
                    rstd[r] = (float) rho;
                }
                if (mod == null) {
                    for (int j = 0; j < d; j++) {
                        out[base + j] = (float) (x[base + j] * rho * w[j]);
                    }
                } else {
                    int batchBase = (r / tokens) * modWidth;
                    int shift = batchBase + shiftChunk * d;
                    int scale = batchBase + scaleChunk * d;
                    for (int j = 0; j < d; j++) {
                        double normed = x[base + j] * rho * w[j];
                        out[base + j] = (float) (normed * (1.0 + mod[scale + j]) + mod[shift + j]);
                    }
                }
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
            for (int r = (int) s; r < e; r++) {
                int base = r * d;
                int gate = (r / tokens) * modWidth + gateChunk * d;
                for (int j = 0; j < d; j++) {
                    h[base + j] = (float) (h[base + j] + (double) mod[gate + j] * a[base + j]);
                }
            }
        });
    }
}
