package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertWithin;
import static facm.backend.cuda.GpuCpuPair.values;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Backward kernels of RMSNorm/adaLN (kernels/rmsnorm.cu) and the gated residual (kernels/adaln.cu) against the CPU
 * reference (float64 inside), on random non-zero inputs with NaN-poisoned activation gradients and random non-zero
 * initial parameter gradients (which must be added to, not overwritten). ρ is computed once in float64 and given to
 * both backends, as the forward would save it.
 *
 * <p>Tolerances (fp32 against fp64, stated relative to the magnitudes of the terms, since sums may cancel):
 * gradX: 1e-5·ρ·(|g_d| + |n_d|·Σ_j|g_j·n_j|/D) with g = gradOut·w·(1 + scale), n = x·ρ (the warp's fp32 dot product
 * over D ≤ 1152 is good to ~(D/32)·2⁻²⁴ of Σ|g·n| in the worst case); parameter gradients: 1e-5·Σ_rows|term| plus
 * 2⁻²³ of the initial value. gatedResidual's gradA is one fp32 product on both sides: bit-exact.
 */
@Tag("gpu")
class CudaNormBackwardTest extends GpuCpuPairTestBase {
    private static final float EPS = 1e-6f;
    private static final int K = 6;

    private NetworkOps gpu;
    private NetworkOps cpu;

    @Override
    void opened() {
        gpu = p.gpu.network();
        cpu = p.cpu.network();
    }

    @Override
    void closing() {
        ((CudaNetworkOps) p.gpu.network()).close(); // scratch back to the arena
    }

    /**
     * One rmsNormModulateBackward on both backends and the comparison. withMod false: plain RMSNorm over x [rows, D]
     * (b·t rows). gradXInPlace: gradX is gradOut itself.
     */
    private void checkRmsNorm(int b, int t, int d, boolean withMod, boolean gradXInPlace, long seed) {
        String what = "B" + b + " T" + t + " D" + d + (withMod ? " mod" : " plain") + (gradXInPlace ? " in place" : "");
        int rows = b * t, shiftChunk = 3, scaleChunk = 4;
        float[] x = values(seed, rows * d, -2f, 2f), w = values(seed + 1, d, 0.5f, 1.5f);
        float[] go = values(seed + 2, rows * d, -1f, 1f), mod = values(seed + 3, b * K * d, -0.5f, 0.5f);
        float[] wInit = values(seed + 4, d, -1f, 1f), modInit = values(seed + 5, b * K * d, -1f, 1f);
        float[] rstd = new float[rows];
        double[] rho = new double[rows];
        for (int r = 0; r < rows; r++) {
            double ss = 0;
            for (int j = 0; j < d; j++) {
                ss += (double) x[r * d + j] * x[r * d + j];
            }
            rho[r] = (float) (1 / Math.sqrt(ss / d + EPS));
            rstd[r] = (float) rho[r];
        }
        int[] xShape = withMod ? new int[] {b, t, d} : new int[] {rows, d};
        var xs = p.upload("x", x, xShape);
        var ws = p.upload("w", w, d);
        var ms = withMod ? p.upload("mod", mod, b, K * d) : null;
        var rs = p.upload("rstd", rstd, xShape[0], withMod ? t : 1);
        var gradOut = p.upload("gradOut", go, xShape);
        var gradX = gradXInPlace ? gradOut : p.poisoned("gradX", DType.F32, xShape);
        var gradW = p.upload("gradW", wInit, d);
        var gradMod = withMod ? p.upload("gradMod", modInit, b, K * d) : null;
        gpu.rmsNormModulateBackward(xs.gpu(), ws.gpu(), EPS, withMod ? ms.gpu() : null, shiftChunk, scaleChunk,
                rs.gpu(), gradOut.gpu(), gradX.gpu(), gradW.gpu(), withMod ? gradMod.gpu() : null);
        cpu.rmsNormModulateBackward(xs.cpu(), ws.cpu(), EPS, withMod ? ms.cpu() : null, shiftChunk, scaleChunk,
                rs.cpu(), gradOut.cpu(), gradX.cpu(), gradW.cpu(), withMod ? gradMod.cpu() : null);

        float[] tolX = new float[rows * d], tolW = new float[d], tolM = new float[b * K * d];
        for (int i = 0; i < d; i++) {
            tolW[i] = 0x1p-23f * Math.abs(wInit[i]);
        }
        for (int i = 0; i < tolM.length; i++) {
            tolM[i] = 0x1p-23f * Math.abs(modInit[i]);
        }
        double[] g = new double[d];
        for (int r = 0; r < rows; r++) {
            int bi = r / t;
            double mag = 0;
            for (int j = 0; j < d; j++) {
                double s = withMod ? 1 + mod[bi * K * d + scaleChunk * d + j] : 1;
                double n = x[r * d + j] * rho[r];
                g[j] = go[r * d + j] * w[j] * s;
                mag += Math.abs(g[j] * n);
                tolW[j] += (float) (1e-5 * Math.abs(go[r * d + j] * n * s));
                if (withMod) {
                    tolM[bi * K * d + scaleChunk * d + j] += (float) (1e-5 * Math.abs(go[r * d + j] * n * w[j]));
                    tolM[bi * K * d + shiftChunk * d + j] += (float) (1e-5 * Math.abs(go[r * d + j]));
                }
            }
            for (int j = 0; j < d; j++) {
                double n = x[r * d + j] * rho[r];
                tolX[r * d + j] = (float) (1e-5 * rho[r] * (Math.abs(g[j]) + Math.abs(n) * mag / d) + 1e-30);
            }
        }
        assertWithin("rmsNormModulateBackward gradX " + what, p.cpu.download(gradX.cpu()),
                p.gpu.download(gradX.gpu()), tolX);
        assertWithin("rmsNormModulateBackward gradWeight " + what, p.cpu.download(gradW.cpu()),
                p.gpu.download(gradW.gpu()), tolW);
        if (withMod) {
            assertWithin("rmsNormModulateBackward gradMod " + what, p.cpu.download(gradMod.cpu()),
                    p.gpu.download(gradMod.gpu()), tolM);
        }
    }

    @Test
    void rmsNormModulateBackwardMatchesCpu() {
        checkRmsNorm(2, 37, 72, true, false, 100);     // vec4 path, tokens not a multiple of the segment length
        checkRmsNorm(3, 5, 37, true, false, 101);      // scalar path (D odd)
        checkRmsNorm(2, 256, 1152, true, false, 102);  // XL block: 4 segments of 64 tokens per sample
        checkRmsNorm(32, 1, 1152, true, false, 103);   // XL final layer on T = 1
        checkRmsNorm(3, 7, 48, false, false, 104);     // plain RMSNorm (qk-norm style, no modulation)
        checkRmsNorm(2, 37, 72, true, true, 105);      // gradX overwrites gradOut
    }

    @Test
    void rmsNormBackwardOutputsAreOptionalAndRstdIsRequired() {
        int b = 2, t = 9, d = 40;
        var x = p.upload("x", values(110, b * t * d, -1f, 1f), b, t, d);
        var w = p.upload("w", values(111, d, 0.5f, 1.5f), d);
        var mod = p.upload("mod", values(112, b * K * d, -0.5f, 0.5f), b, K * d);
        var rstd = p.upload("rstd", values(113, b * t, 0.5f, 2f), b, t);
        var gradOut = p.upload("gradOut", values(114, b * t * d, -1f, 1f), b, t, d);
        var gradMod = p.upload("gradMod", values(115, b * K * d, -1f, 1f), b, K * d);
        // Only gradMod: gradX and gradWeight not wanted.
        gpu.rmsNormModulateBackward(x.gpu(), w.gpu(), EPS, mod.gpu(), 0, 1, rstd.gpu(), gradOut.gpu(), null, null,
                gradMod.gpu());
        cpu.rmsNormModulateBackward(x.cpu(), w.cpu(), EPS, mod.cpu(), 0, 1, rstd.cpu(), gradOut.cpu(), null, null,
                gradMod.cpu());
        float[] tol = new float[b * K * d];
        java.util.Arrays.fill(tol, 1e-5f * t * 4);
        assertWithin("rmsNormModulateBackward gradMod only", p.cpu.download(gradMod.cpu()),
                p.gpu.download(gradMod.gpu()), tol);
        assertThrows(NullPointerException.class, () -> gpu.rmsNormModulateBackward(x.gpu(), w.gpu(), EPS, mod.gpu(),
                0, 1, null, gradOut.gpu(), gradOut.gpu(), null, null));
        assertThrows(IllegalArgumentException.class, () -> gpu.rmsNormModulateBackward(x.gpu(), w.gpu(), EPS, null,
                0, 1, rstd.gpu(), gradOut.gpu(), null, null, gradMod.gpu()));
        assertThrows(ShapeException.class, () -> gpu.rmsNormModulateBackward(x.gpu(), w.gpu(), EPS, mod.gpu(), 0, 1,
                rstd.gpu(), gradOut.gpu(), x.gpu(), null, null));
    }

    private void checkGated(int b, int t, int d, boolean inPlace, long seed) {
        String what = "B" + b + " T" + t + " D" + d + (inPlace ? " gradA = gradH" : "");
        int gateChunk = 2;
        float[] a = values(seed, b * t * d, -2f, 2f), gh = values(seed + 1, b * t * d, -1f, 1f);
        float[] modInit = values(seed + 3, b * K * d, -1f, 1f);
        var as = p.upload("a", a, b, t, d);
        var mod = p.upload("mod", values(seed + 2, b * K * d, -1f, 1f), b, K * d);
        var gradH = p.upload("gradH", gh, b, t, d);
        var gradA = inPlace ? gradH : p.poisoned("gradA", DType.F32, b, t, d);
        var gradMod = p.upload("gradMod", modInit, b, K * d);
        gpu.gatedResidualBackward(as.gpu(), mod.gpu(), gateChunk, gradH.gpu(), gradA.gpu(), gradMod.gpu());
        cpu.gatedResidualBackward(as.cpu(), mod.cpu(), gateChunk, gradH.cpu(), gradA.cpu(), gradMod.cpu());
        assertBitEqual("gatedResidualBackward gradA " + what, p.cpu.download(gradA.cpu()),
                p.gpu.download(gradA.gpu()));
        float[] tol = new float[b * K * d];
        for (int i = 0; i < tol.length; i++) {
            tol[i] = 0x1p-23f * Math.abs(modInit[i]);
        }
        for (int r = 0; r < b * t; r++) {
            for (int j = 0; j < d; j++) {
                double term = (double) a[r * d + j] * gh[r * d + j];
                tol[(r / t) * K * d + gateChunk * d + j] += (float) (1e-5 * Math.abs(term));
            }
        }
        assertWithin("gatedResidualBackward gradMod " + what, p.cpu.download(gradMod.cpu()),
                p.gpu.download(gradMod.gpu()), tol);
    }

    @Test
    void gatedResidualBackwardMatchesCpu() {
        checkGated(2, 37, 72, false, 120);
        checkGated(3, 5, 37, false, 121);
        checkGated(2, 256, 1152, false, 122);
        checkGated(32, 1, 1152, true, 123);
    }

    @Test
    void parameterGradientsAreBitReproducible() {
        int b = 4, t = 256, d = 1152;
        var x = p.upload("x", values(130, b * t * d, -2f, 2f), b, t, d);
        var w = p.upload("w", values(131, d, 0.5f, 1.5f), d);
        var mod = p.upload("mod", values(132, b * K * d, -0.5f, 0.5f), b, K * d);
        var rstd = p.upload("rstd", values(133, b * t, 0.5f, 2f), b, t);
        var gradOut = p.upload("gradOut", values(134, b * t * d, -1f, 1f), b, t, d);
        float[][] results = new float[2][];
        for (int run = 0; run < 2; run++) {
            var gradW = p.upload("gradW" + run, new float[d], d);
            var gradMod = p.upload("gradMod" + run, new float[b * K * d], b, K * d);
            gpu.rmsNormModulateBackward(x.gpu(), w.gpu(), EPS, mod.gpu(), 0, 1, rstd.gpu(), gradOut.gpu(), null,
                    gradW.gpu(), gradMod.gpu());
            float[] gw = p.gpu.download(gradW.gpu()), gm = p.gpu.download(gradMod.gpu());
            results[run] = java.util.Arrays.copyOf(gw, d + gm.length);
            System.arraycopy(gm, 0, results[run], d, gm.length);
        }
        assertBitEqual("rmsNormModulateBackward parameter gradients, run 2 vs run 1", results[0], results[1]);
    }
}
