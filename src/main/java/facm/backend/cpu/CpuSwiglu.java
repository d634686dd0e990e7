package facm.backend.cpu;

/**
 * The SwiGLU loops of {@link CpuNetworkOps#swiglu}, {@link CpuNetworkBackward#swigluBackward} and
 * {@link CpuNetworkJvp#swigluJvp} on raw arrays (shapes and aliasing are checked there): gu [rows, 2F] holds the gate
 * g in its first F columns and the up projection u in the last F; SiLU(g) = g·σ(g), σ(g) = 1/(1 + e^−g) (§3.2 SwiGLU).
 *
 * <p>Each row is staged: g, u (and the incoming gradient or tangent) are widened into float64 row arrays, the formulas
 * run over those, and the results are rounded into the fp32 outputs once. Every loop then stores into one array at the
 * index it loads that array at, or moves between a float and a double array, which is what lets the JIT vectorize it
 * (see {@link CpuGemm}); e^−g comes from {@link DoubleExp}. The formulas and their order of operations are those of the
 * element-at-a-time loops this replaces.
 */
final class CpuSwiglu {
    /** e^−g is taken at −g ≤ 709 (the range of {@link DoubleExp}); past that σ(g) underflows to ~1e-308 anyway. */
    private static final double MAX_EXP_ARG = 709.0;

    private CpuSwiglu() {
    }

    /** Per-task row buffers of width F. */
    private static final class Rows {
        final double[] g;
        final double[] u;
        final double[] e;
        final double[] in;
        final double[] in2;
        final DoubleExp.Scratch exp;

        Rows(int f) {
            g = new double[f];
            u = new double[f];
            e = new double[f];
            in = new double[f];
            in2 = new double[f];
            exp = new DoubleExp.Scratch(f);
        }

        /** g, u of row r and e = e^−g. */
        void load(float[] gu, int r, int f) {
            int src = r * 2 * f;
            for (int j = 0; j < f; j++) {
                g[j] = gu[src + j];
            }
            for (int j = 0; j < f; j++) {
                u[j] = gu[src + f + j];
            }
            for (int j = 0; j < f; j++) {
                e[j] = Math.min(-g[j], MAX_EXP_ARG);
            }
            DoubleExp.inPlace(e, 0, f, exp);
        }

        /** e ← σ(g) = 1/(1 + e^−g). */
        void sigmoid(int f) {
            for (int j = 0; j < f; j++) {
                e[j] = 1.0 / (1.0 + e[j]);
            }
        }
    }

    /** out[r, j] = g/(1 + e^−g)·u. */
    static void forward(ParallelRanges par, float[] gu, float[] out, int rows, int f) {
        par.forRange(rows, CpuNetworkOps.grain(8L * f), (s, e) -> {
            Rows w = new Rows(f);
            for (int r = (int) s; r < e; r++) {
                w.load(gu, r, f);
                for (int j = 0; j < f; j++) {
                    w.in[j] = w.g[j] / (1.0 + w.e[j]) * w.u[j];
                }
                store(w.in, out, r * f, f);
            }
        });
    }

    /**
     * gradGu[r, j] = dy·u·σ·(1 + g·(1 − σ)) (the gate: SiLU'(g) = σ(1 + g(1 − σ))), gradGu[r, F + j] = dy·g·σ, with
     * dy = gradOut[r, j].
     */
    static void backward(ParallelRanges par, float[] gu, float[] gradOut, float[] gradGu, int rows, int f) {
        par.forRange(rows, CpuNetworkOps.grain(10L * f), (s, e) -> {
            Rows w = new Rows(f);
            for (int r = (int) s; r < e; r++) {
                w.load(gu, r, f);
                w.sigmoid(f);
                int dy = r * f;
                for (int j = 0; j < f; j++) {
                    w.in[j] = gradOut[dy + j];
                }
                for (int j = 0; j < f; j++) {
                    w.in2[j] = w.in[j] * w.g[j] * w.e[j];
                }
                for (int j = 0; j < f; j++) {
                    w.in[j] = w.in[j] * w.u[j] * w.e[j] * (1.0 + w.g[j] * (1.0 - w.e[j]));
                }
                store(w.in, gradGu, r * 2 * f, f);
                store(w.in2, gradGu, r * 2 * f + f, f);
            }
        });
    }

    /** outDot[r, j] = SiLU'(g)·ġ·u + g·σ·u̇ with ġ, u̇ the two halves of guDot's row r. */
    static void tangent(ParallelRanges par, float[] gu, float[] guDot, float[] outDot, int rows, int f) {
        par.forRange(rows, CpuNetworkOps.grain(10L * f), (s, e) -> {
            Rows w = new Rows(f);
            for (int r = (int) s; r < e; r++) {
                w.load(gu, r, f);
                w.sigmoid(f);
                int src = r * 2 * f;
                for (int j = 0; j < f; j++) {
                    w.in[j] = guDot[src + j];
                }
                for (int j = 0; j < f; j++) {
                    w.in2[j] = guDot[src + f + j];
                }
                for (int j = 0; j < f; j++) {
                    double sigma = w.e[j], g = w.g[j];
                    double siluPrime = sigma * (1.0 + g * (1.0 - sigma));
                    w.in[j] = siluPrime * w.in[j] * w.u[j] + g * sigma * w.in2[j];
                }
                store(w.in, outDot, r * f, f);
            }
        });
    }

    /** dst[at + j] = (float) row[j]. */
    private static void store(double[] row, float[] dst, int at, int f) {
        for (int j = 0; j < f; j++) {
            dst[at + j] = (float) row[j];
        }
    }
}
