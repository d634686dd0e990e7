package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertWithinFractionOfMax;

/**
 * The layer JVP ops of CudaNetworkJvp / CudaAttentionJvp (timestepEmbeddingJvp, siluJvp, rmsNormModulateJvp,
 * gatedResidualJvp, qkNormRopeJvp, swigluJvp) on random non-zero inputs (java.util.Random, fixed seeds), odd and
 * realistic sizes, outputs poisoned with NaN, null tangent inputs (which must give the zero tangent). The device comes
 * from CudaTestSupport.deviceWithKernels() through GpuCpuPair (syncCheck on; skipped without a GPU or kernels).
 *
 * <p>Primal: compared with the CUDA forward op on the same inputs, bit for bit where the JVP kernel repeats the forward
 * kernel's arithmetic (all of them; rmsNormModulate's JVP takes its float4 kernel where the forward takes
 * rmsnorm_fwd_vec4). Tangent: compared with a
 * float64 reference of the facm-spec.md §6.2 rule computed here, |error| ≤ 1e-5 · max(max|reference|, 1e-3).
 */
@Tag("gpu")
class CudaJvpTest extends GpuCpuPairTestBase {
    static final double TOL = 1e-5;
    static final float EPS = 1e-6f;

    private NetworkOps gpu;

    @Override
    void opened() {
        gpu = new CudaNetworkOps(p.gpu);
    }

    // ---------------------------------------------------------------- data and comparisons

    /** n values uniform in [lo, hi), none exactly zero. */
    static float[] nonZero(Random r, int n, double lo, double hi) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            float x;
            do {
                x = (float) (lo + (hi - lo) * r.nextDouble());
            } while (x == 0f);
            v[i] = x;
        }
        return v;
    }

    private Tensor up(String name, float[] data, int... shape) {
        return data == null ? null : p.upload(name, data, shape).gpu();
    }

    private Tensor nan(String name, int... shape) {
        return p.poisoned(name, DType.F32, shape).gpu();
    }

    private float[] get(Tensor t) {
        return p.gpu.download(t);
    }

    /** JVP primal (all finite: no poison left) against the forward op's output. */
    static void assertPrimal(String what, float[] forward, float[] jvp, boolean bitExact) {
        for (int i = 0; i < jvp.length; i++) {
            if (!Float.isFinite(jvp[i])) {
                throw new AssertionError(what + "[" + i + "]: not written or not finite: " + jvp[i]);
            }
        }
        if (bitExact) {
            assertBitEqual(what, forward, jvp);
        } else {
            double[] f = new double[forward.length];
            for (int i = 0; i < f.length; i++) {
                f[i] = forward[i];
            }
            assertWithinFractionOfMax(what, f, jvp, TOL, 1e-3);
        }
    }

    static void assertZero(String what, float[] actual) {
        for (int i = 0; i < actual.length; i++) {
            if (actual[i] != 0f) {
                throw new AssertionError(what + "[" + i + "]: expected 0 (null tangents), got " + actual[i]);
            }
        }
    }

    static double sigmoid(double x) {
        return 1 / (1 + Math.exp(-x));
    }

    // ---------------------------------------------------------------- timestepEmbeddingJvp

    /** ė = [−f ⊙ sin(τf), f ⊙ cos(τf)]·τ̇, f_k = exp(−ln(maxPeriod)·k/half). */
    static double[] timestepTangent(float[] t, float[] tDot, int dim, float maxPeriod) {
        int half = dim / 2;
        double[] out = new double[t.length * dim];
        for (int b = 0; b < t.length; b++) {
            double td = tDot == null ? 0 : tDot[b];
            for (int col = 0; col < dim; col++) {
                int k = col < half ? col : col - half;
                double f = Math.exp(-Math.log(maxPeriod) * k / half);
                double arg = t[b] * f;
                out[b * dim + col] = col < half ? -f * Math.sin(arg) * td : f * Math.cos(arg) * td;
            }
        }
        return out;
    }

    private void checkTimestep(long seed, int b, int dim, double tMax, boolean tDotOn) {
        Random r = new Random(seed);
        float maxPeriod = 10000f;
        float[] t = nonZero(r, b, 0, tMax), td = tDotOn ? nonZero(r, b, -2, 2) : null;
        Tensor tt = up("t", t, b), tdt = up("tDot", td, b);
        Tensor out = nan("out", b, dim), outDot = nan("outDot", b, dim), fwd = nan("fwdOut", b, dim);
        gpu.timestepEmbeddingJvp(tt, tdt, maxPeriod, out, outDot);
        gpu.timestepEmbedding(tt, maxPeriod, fwd);
        String shape = "B=" + b + " dim=" + dim + " t<" + tMax + (tDotOn ? "" : " tDot=null");
        assertPrimal("timestep out vs forward " + shape, get(fwd), get(out), true);
        assertWithinFractionOfMax("timestep outDot " + shape, timestepTangent(t, td, dim, maxPeriod), get(outDot), TOL,
                1e-3);
        if (!tDotOn) {
            assertZero("timestep outDot " + shape, get(outDot));
        }
    }

    @Test
    void timestepEmbeddingJvp() {
        checkTimestep(1, 5, 256, 1, true);
        checkTimestep(2, 3, 256, 1000, true);
        checkTimestep(3, 1, 2, 1, true);
        checkTimestep(4, 7, 6, 50, true);
        checkTimestep(5, 4, 256, 1, false);
    }

    // ---------------------------------------------------------------- siluJvp

    private void checkSilu(long seed, boolean xDotOn, int... shape) {
        Random r = new Random(seed);
        int n = GpuCpuPair.numel(shape);
        float[] x = nonZero(r, n, -12, 12), xd = xDotOn ? nonZero(r, n, -2, 2) : null;
        Tensor xt = up("x", x, shape), xdt = up("xDot", xd, shape);
        Tensor out = nan("out", shape), outDot = nan("outDot", shape), fwd = nan("fwdOut", shape);
        gpu.siluJvp(xt, xdt, out, outDot);
        p.gpu.unary(UnaryOp.SILU, xt, fwd);
        double[] ref = new double[n];
        for (int i = 0; i < n; i++) {
            double sg = sigmoid(x[i]);
            ref[i] = xd == null ? 0 : sg * (1 + x[i] * (1 - sg)) * xd[i];
        }
        String what = "n=" + n + (xDotOn ? "" : " xDot=null");
        assertPrimal("silu out vs unary SILU " + what, get(fwd), get(out), true);
        assertWithinFractionOfMax("silu outDot " + what, ref, get(outDot), TOL, 1e-3);
        if (!xDotOn) {
            assertZero("silu outDot " + what, get(outDot));
        }
    }

    @Test
    void siluJvp() {
        checkSilu(11, true, 3, 1001);
        checkSilu(12, true, 2, 6912);
        checkSilu(13, true, 1);
        checkSilu(14, false, 5, 37);
    }

    // ---------------------------------------------------------------- rmsNormModulateJvp

    /** ẏ = w ⊙ ρ(ẋ − x·ρ²·mean(x ⊙ ẋ)) ⊙ (1 + scale) + x·ρ ⊙ w ⊙ scaleDot + shiftDot (no mod: the first term, s = 1). */
    static double[] rmsNormTangent(float[] x, float[] xd, float[] w, float eps, float[] mod, float[] modDot, int tokens,
                                   int d, int shiftChunk, int scaleChunk) {
        int rows = x.length / d;
        int modStride = mod == null ? 0 : mod.length / (rows / tokens);
        double[] out = new double[x.length];
        for (int row = 0; row < rows; row++) {
            int o = row * d;
            double ss = 0, sx = 0;
            for (int i = 0; i < d; i++) {
                ss += (double) x[o + i] * x[o + i];
                sx += (double) x[o + i] * (xd == null ? 0 : xd[o + i]);
            }
            double rho = 1 / Math.sqrt(ss / d + eps), corr = rho * rho * sx / d;
            int mb = (row / tokens) * modStride;
            for (int i = 0; i < d; i++) {
                double t = w[i] * rho * ((xd == null ? 0 : xd[o + i]) - x[o + i] * corr);
                if (mod != null) {
                    t *= 1 + (double) mod[mb + scaleChunk * d + i];
                    if (modDot != null) {
                        t += (double) x[o + i] * rho * w[i] * modDot[mb + scaleChunk * d + i]
                                + modDot[mb + shiftChunk * d + i];
                    }
                }
                out[o + i] = t;
            }
        }
        return out;
    }

    /** k = 0: no mod (x is [B·T, D]); else mod [B, k·D] with the given chunks and x [B, T, D]. */
    private void checkRmsNorm(long seed, int b, int t, int d, int k, int shiftChunk, int scaleChunk, boolean xDotOn,
                              boolean modDotOn, boolean rstdOn) {
        Random r = new Random(seed);
        int n = b * t * d;
        int[] shape = k == 0 ? new int[] {b * t, d} : new int[] {b, t, d};
        float[] x = nonZero(r, n, -2, 2), xd = xDotOn ? nonZero(r, n, -1, 1) : null;
        float[] w = nonZero(r, d, -1.5, 1.5);
        float[] mod = k == 0 ? null : nonZero(r, b * k * d, -1, 1);
        float[] md = k == 0 || !modDotOn ? null : nonZero(r, b * k * d, -1, 1);
        Tensor xt = up("x", x, shape), xdt = up("xDot", xd, shape), wt = up("weight", w, d);
        Tensor mt = up("mod", mod, b, k * d), mdt = up("modDot", md, b, k * d);
        Tensor out = nan("out", shape), outDot = nan("outDot", shape), fwd = nan("fwdOut", shape);
        Tensor rstd = rstdOn ? nan("rstd", b * t) : null, fwdRstd = rstdOn ? nan("fwdRstd", b * t) : null;
        gpu.rmsNormModulateJvp(xt, xdt, wt, EPS, mt, mdt, shiftChunk, scaleChunk, out, outDot, rstd);
        gpu.rmsNormModulate(xt, wt, EPS, mt, shiftChunk, scaleChunk, fwd, fwdRstd);
        String what = "B=" + b + " T=" + t + " D=" + d + (k == 0 ? " no mod" : " K=" + k + " shift " + shiftChunk
                + " scale " + scaleChunk) + (xDotOn ? "" : " xDot=null") + (k > 0 && !modDotOn ? " modDot=null" : "");
        // The JVP takes its float4 kernel exactly where the forward takes rmsnorm_fwd_vec4 (D % 4 == 0, aligned), the
        // scalar one where the forward does: the primal and rstd are the forward's bits in every case.
        boolean sameKernel = true;
        assertPrimal("rmsNorm out vs forward " + what, get(fwd), get(out), sameKernel);
        if (rstdOn) {
            assertPrimal("rmsNorm rstd vs forward " + what, get(fwdRstd), get(rstd), sameKernel);
        }
        assertWithinFractionOfMax("rmsNorm outDot " + what,
                rmsNormTangent(x, xd, w, EPS, mod, md, t, d, shiftChunk, scaleChunk), get(outDot), TOL, 1e-3);
        if (!xDotOn && md == null) {
            assertZero("rmsNorm outDot " + what, get(outDot));
        }
    }

    @Test
    void rmsNormModulateJvpRealisticWidth() {
        checkRmsNorm(21, 2, 37, 1152, 6, 3, 4, true, true, true);
        checkRmsNorm(22, 2, 37, 1152, 6, 0, 1, true, false, true);
        checkRmsNorm(23, 2, 5, 1152, 2, 0, 1, false, true, true);
        checkRmsNorm(24, 2, 37, 1152, 0, 0, 0, true, false, true);
        checkRmsNorm(25, 1, 9, 1792, 6, 3, 4, true, true, true);   // 1p6B width: the 16-float4 kernel
    }

    @Test
    void rmsNormModulateJvpOddWidth() {
        checkRmsNorm(31, 2, 37, 37, 6, 3, 4, true, true, true);
        checkRmsNorm(32, 3, 7, 37, 2, 0, 1, true, false, true);
        checkRmsNorm(33, 1, 37, 37, 0, 0, 0, true, false, false);
        checkRmsNorm(34, 2, 1, 37, 6, 3, 4, false, true, true);
    }

    @Test
    void rmsNormModulateJvpNullTangentsAreZero() {
        checkRmsNorm(41, 2, 37, 37, 6, 3, 4, false, false, true);
        checkRmsNorm(42, 2, 5, 1152, 0, 0, 0, false, false, true);
    }

    // ---------------------------------------------------------------- gatedResidualJvp

    private void checkGated(long seed, int b, int t, int d, int k, int gateChunk, boolean aDotOn, boolean modDotOn) {
        Random r = new Random(seed);
        int n = b * t * d;
        float[] h = nonZero(r, n, -2, 2), hd = nonZero(r, n, -1, 1), a = nonZero(r, n, -2, 2);
        float[] ad = aDotOn ? nonZero(r, n, -1, 1) : null;
        float[] mod = nonZero(r, b * k * d, -1, 1), md = modDotOn ? nonZero(r, b * k * d, -1, 1) : null;
        Tensor ht = up("h", h, b, t, d), hdt = up("hDot", hd, b, t, d), hFwd = up("hForward", h, b, t, d);
        Tensor at = up("a", a, b, t, d), adt = up("aDot", ad, b, t, d);
        Tensor mt = up("mod", mod, b, k * d), mdt = up("modDot", md, b, k * d);
        gpu.gatedResidualJvp(ht, hdt, at, adt, mt, mdt, gateChunk);
        gpu.gatedResidual(hFwd, at, mt, gateChunk);
        double[] ref = new double[n];
        for (int i = 0; i < n; i++) {
            int g = (i / (t * d)) * k * d + gateChunk * d + i % d;
            ref[i] = hd[i] + (md == null ? 0 : (double) md[g] * a[i]) + (ad == null ? 0 : (double) mod[g] * ad[i]);
        }
        String what = "B=" + b + " T=" + t + " D=" + d + " K=" + k + " gate " + gateChunk
                + (aDotOn ? "" : " aDot=null") + (modDotOn ? "" : " modDot=null");
        assertPrimal("gated h vs forward " + what, get(hFwd), get(ht), true);
        assertWithinFractionOfMax("gated hDot " + what, ref, get(hdt), TOL, 1e-3);
        if (!aDotOn && !modDotOn) {
            assertBitEqual("gated hDot unchanged " + what, hd, get(hdt));
        }
    }

    @Test
    void gatedResidualJvp() {
        checkGated(51, 2, 37, 1152, 6, 2, true, true);
        checkGated(52, 2, 37, 37, 6, 5, true, true);
        checkGated(53, 3, 5, 37, 2, 1, false, true);
        checkGated(54, 2, 37, 1152, 6, 5, true, false);
        checkGated(55, 1, 37, 37, 6, 0, false, false);
    }

    // ---------------------------------------------------------------- swigluJvp

    private void checkSwiglu(long seed, boolean guDotOn, int rows, int f, int... lead) {
        Random r = new Random(seed);
        int[] inShape = java.util.Arrays.copyOf(lead, lead.length + 1), outShape = inShape.clone();
        inShape[lead.length] = 2 * f;
        outShape[lead.length] = f;
        float[] gu = nonZero(r, rows * 2 * f, -6, 6), gd = guDotOn ? nonZero(r, rows * 2 * f, -1, 1) : null;
        Tensor in = up("gu", gu, inShape), inDot = up("guDot", gd, inShape);
        Tensor out = nan("out", outShape), outDot = nan("outDot", outShape), fwd = nan("fwdOut", outShape);
        gpu.swigluJvp(in, inDot, out, outDot);
        gpu.swiglu(in, fwd);
        double[] ref = new double[rows * f];
        for (int row = 0; row < rows; row++) {
            for (int i = 0; i < f; i++) {
                int gi = row * 2 * f + i, ui = gi + f;
                double g = gu[gi], sg = sigmoid(g);
                ref[row * f + i] = gd == null ? 0 : sg * (1 + g * (1 - sg)) * gd[gi] * gu[ui] + g * sg * gd[ui];
            }
        }
        String what = "rows=" + rows + " F=" + f + (guDotOn ? "" : " guDot=null");
        assertPrimal("swiglu out vs forward " + what, get(fwd), get(out), true);
        assertWithinFractionOfMax("swiglu outDot " + what, ref, get(outDot), TOL, 1e-3);
        if (!guDotOn) {
            assertZero("swiglu outDot " + what, get(outDot));
        }
    }

    @Test
    void swigluJvp() {
        checkSwiglu(91, true, 74, 1152, 2, 37);
        checkSwiglu(92, true, 5, 37, 5);
        checkSwiglu(93, true, 3, 4608, 3);
        checkSwiglu(94, false, 37, 37, 1, 37);
        checkSwiglu(95, false, 6, 1152, 6);  // the float4 kernel with a null tangent
    }
}
