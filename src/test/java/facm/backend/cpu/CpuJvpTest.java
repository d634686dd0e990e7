package facm.backend.cpu;

import static facm.backend.cpu.FiniteDifferences.assertBitIdentical;
import static facm.backend.cpu.FiniteDifferences.check;
import static facm.backend.cpu.FiniteDifferences.directional;
import static facm.backend.cpu.FiniteDifferences.toDouble;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.nonZero;
import static facm.backend.cpu.ReferenceData.numel;
import static facm.backend.cpu.ReferenceData.uniform;
import static org.junit.jupiter.api.Assertions.assertThrows;

import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The elementwise and row-wise JVP ops of {@link CpuNetworkOps} (time features, SiLU, SwiGLU, RMSNorm/adaLN, gated
 * residual): the primal is bit-identical to the forward op (rstd too), the tangent matches the float64 central
 * difference (f(x + h·ẋ) − f(x − h·ẋ)) / 2h of a float64 forward written here within a max-norm relative error of
 * 1e-4 ({@link FiniteDifferences}, printed as [FD]), and null tangents act as zeros.
 */
class CpuJvpTest {
    private static final CpuBackend CPU = new CpuBackend(3);
    private static final NetworkOps NET = CPU.network();
    private static final float EPS = 1e-6f;
    /** Chunks per mod row, as in a DiT block. */
    private static final int K = 6;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    private static Tensor poisoned(String name, int... shape) {
        return CPU.upload(name, nans(numel(shape)), shape);
    }

    private static Tensor up(String name, float[] data, int... shape) {
        return CPU.upload(name, data, shape);
    }

    private static float[] zeros(int n) {
        return new float[n];
    }

    // ---------------------------------------------------------------- time features

    private static double[] timeFeatures64(double[] t, int dim, double maxPeriod) {
        int half = dim / 2;
        double[] out = new double[t.length * dim];
        for (int b = 0; b < t.length; b++) {
            for (int k = 0; k < half; k++) {
                double f = Math.exp(-Math.log(maxPeriod) * k / half);
                out[b * dim + k] = Math.cos(t[b] * f);
                out[b * dim + half + k] = Math.sin(t[b] * f);
            }
        }
        return out;
    }

    @Test
    void timestepEmbeddingJvpMatchesForwardAndFiniteDifferences() {
        int[][] cases = {{3, 16}, {1, 2}, {5, 38}};
        long seed = 1;
        for (int[] c : cases) {
            int b = c[0], dim = c[1];
            float[] t = uniform(seed++, b, 0, 1000), tDot = nonZero(seed++, b);
            Tensor tt = up("t", t, b), td = up("tDot", tDot, b);
            Tensor expected = poisoned("expected", b, dim), out = poisoned("out", b, dim);
            Tensor outDot = poisoned("outDot", b, dim);
            NET.timestepEmbedding(tt, 10000f, expected);
            NET.timestepEmbeddingJvp(tt, td, 10000f, out, outDot);
            String what = "timestepEmbeddingJvp B=" + b + " dim=" + dim;
            assertBitIdentical(what + " primal", CPU.download(expected), CPU.download(out));
            double[] fd = directional(in -> timeFeatures64(in[0], dim, 10000), new double[][] {toDouble(t)},
                    new double[][] {toDouble(tDot)});
            check(what + " tangent (tDot per sample)", fd, CPU.download(outDot));
            NET.timestepEmbeddingJvp(tt, null, 10000f, out, outDot);
            assertBitIdentical(what + " null tDot", zeros(b * dim), CPU.download(outDot));
        }
    }

    // ---------------------------------------------------------------- SiLU and SwiGLU

    private static double silu64(double x) {
        return x / (1 + Math.exp(-x));
    }

    @Test
    void siluJvpMatchesUnarySiluAndFiniteDifferences() {
        int[][] shapes = {{3, 37, 5}, {1}, {2, 129}};
        long seed = 10;
        for (int[] shape : shapes) {
            int n = numel(shape);
            float[] x = uniform(seed++, n, -8, 8), xDot = nonZero(seed++, n);
            Tensor xt = up("x", x, shape), xd = up("xDot", xDot, shape);
            Tensor expected = poisoned("expected", shape), out = poisoned("out", shape), outDot = poisoned("od", shape);
            CPU.unary(UnaryOp.SILU, xt, expected);
            NET.siluJvp(xt, xd, out, outDot);
            String what = "siluJvp n=" + n;
            assertBitIdentical(what + " primal", CPU.download(expected), CPU.download(out));
            double[] fd = directional(in -> {
                double[] y = new double[n];
                for (int i = 0; i < n; i++) {
                    y[i] = silu64(in[0][i]);
                }
                return y;
            }, new double[][] {toDouble(x)}, new double[][] {toDouble(xDot)});
            check(what + " tangent", fd, CPU.download(outDot));
            NET.siluJvp(xt, null, out, outDot);
            assertBitIdentical(what + " null xDot", zeros(n), CPU.download(outDot));
            // In place, as the forward allows: out = x, outDot = xDot.
            NET.siluJvp(xt, xd, out, outDot);
            float[] tangent = CPU.download(outDot);
            NET.siluJvp(xt, xd, xt, xd);
            assertBitIdentical(what + " in place primal", CPU.download(expected), CPU.download(xt));
            assertBitIdentical(what + " in place tangent", tangent, CPU.download(xd));
        }
    }

    @Test
    void swigluJvpMatchesForwardAndFiniteDifferences() {
        int[][] cases = {{7, 5}, {1, 1}, {37, 40}};
        long seed = 20;
        for (int[] c : cases) {
            int rows = c[0], f = c[1];
            float[] gu = uniform(seed++, rows * 2 * f, -6, 6), guDot = nonZero(seed++, rows * 2 * f);
            Tensor gt = up("gu", gu, rows, 2 * f), gd = up("guDot", guDot, rows, 2 * f);
            Tensor expected = poisoned("expected", rows, f), out = poisoned("out", rows, f);
            Tensor outDot = poisoned("outDot", rows, f);
            NET.swiglu(gt, expected);
            NET.swigluJvp(gt, gd, out, outDot);
            String what = "swigluJvp rows=" + rows + " F=" + f;
            assertBitIdentical(what + " primal", CPU.download(expected), CPU.download(out));
            double[] fd = directional(in -> {
                double[] y = new double[rows * f];
                for (int r = 0; r < rows; r++) {
                    for (int j = 0; j < f; j++) {
                        y[r * f + j] = silu64(in[0][r * 2 * f + j]) * in[0][r * 2 * f + f + j];
                    }
                }
                return y;
            }, new double[][] {toDouble(gu)}, new double[][] {toDouble(guDot)});
            check(what + " tangent", fd, CPU.download(outDot));
            NET.swigluJvp(gt, null, out, outDot);
            assertBitIdentical(what + " null guDot", zeros(rows * f), CPU.download(outDot));
        }
    }

    // ---------------------------------------------------------------- RMSNorm / adaLN

    /** out = x·(mean(x²) + eps)^(−½)·w·(1 + scale) + shift; mod null: plain RMSNorm over the last dimension. */
    private static double[] rmsNorm64(double[] x, double[] w, double[] mod, int tokens, int shift, int scale) {
        int d = w.length, rows = x.length / d;
        double[] out = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double mean = 0;
            for (int j = 0; j < d; j++) {
                mean += x[r * d + j] * x[r * d + j];
            }
            double rho = Math.pow(mean / d + EPS, -0.5);
            for (int j = 0; j < d; j++) {
                double y = x[r * d + j] * rho * w[j];
                if (mod != null) {
                    int row = (r / tokens) * K * d;
                    y = y * (1 + mod[row + scale * d + j]) + mod[row + shift * d + j];
                }
                out[r * d + j] = y;
            }
        }
        return out;
    }

    /** {B, T, D, shiftChunk, scaleChunk}: odd D, a single token, T = 37, and shift = scale (one chunk). */
    private static final int[][] MOD_CASES = {{2, 5, 7, 0, 1}, {1, 1, 9, 3, 4}, {3, 37, 6, 2, 2}};

    @Test
    void modulatedRmsNormJvpMatchesForwardAndFiniteDifferences() {
        long seed = 30;
        for (int[] c : MOD_CASES) {
            int b = c[0], t = c[1], d = c[2], shift = c[3], scale = c[4];
            int n = b * t * d;
            float[] x = nonZero(seed++, n), xDot = nonZero(seed++, n), w = uniform(seed++, d, 0.5, 1.5);
            float[] mod = uniform(seed++, b * K * d, -0.5, 0.5), modDot = nonZero(seed++, b * K * d);
            Tensor xt = up("x", x, b, t, d), xd = up("xDot", xDot, b, t, d), wt = up("w", w, d);
            Tensor mt = up("mod", mod, b, K * d), md = up("modDot", modDot, b, K * d);
            Tensor expected = poisoned("expected", b, t, d), expectedRstd = poisoned("expectedRstd", b, t);
            Tensor out = poisoned("out", b, t, d), outDot = poisoned("outDot", b, t, d), rstd = poisoned("rstd", b, t);
            NET.rmsNormModulate(xt, wt, EPS, mt, shift, scale, expected, expectedRstd);
            NET.rmsNormModulateJvp(xt, xd, wt, EPS, mt, md, shift, scale, out, outDot, rstd);
            String what = "rmsNormModulateJvp " + b + "x" + t + "x" + d + " chunks " + shift + "/" + scale;
            assertBitIdentical(what + " primal", CPU.download(expected), CPU.download(out));
            assertBitIdentical(what + " rstd", CPU.download(expectedRstd), CPU.download(rstd));
            FiniteDifferences.Forward f = in -> rmsNorm64(in[0], in[1], in[2], t, shift, scale);
            double[][] inputs = {toDouble(x), toDouble(w), toDouble(mod)};
            double[] fd = directional(f, inputs, new double[][] {toDouble(xDot), null, toDouble(modDot)});
            check(what + " tangent (x, mod)", fd, CPU.download(outDot));
            NET.rmsNormModulateJvp(xt, xd, wt, EPS, mt, null, shift, scale, out, outDot, null);
            check(what + " tangent (x only)", directional(f, inputs, new double[][] {toDouble(xDot), null, null}),
                    CPU.download(outDot));
            NET.rmsNormModulateJvp(xt, null, wt, EPS, mt, md, shift, scale, out, outDot, null);
            check(what + " tangent (mod only)", directional(f, inputs, new double[][] {null, null, toDouble(modDot)}),
                    CPU.download(outDot));
            NET.rmsNormModulateJvp(xt, null, wt, EPS, mt, null, shift, scale, out, outDot, null);
            assertBitIdentical(what + " null tangents", zeros(n), CPU.download(outDot));
            // In place, as the forward allows: out = x and outDot = xDot.
            NET.rmsNormModulateJvp(xt, xd, wt, EPS, mt, md, shift, scale, out, outDot, null);
            float[] tangent = CPU.download(outDot);
            NET.rmsNormModulateJvp(xt, xd, wt, EPS, mt, md, shift, scale, xt, xd, null);
            assertBitIdentical(what + " in place primal", CPU.download(expected), CPU.download(xt));
            assertBitIdentical(what + " in place tangent", tangent, CPU.download(xd));
        }
    }

    @Test
    void plainRmsNormJvpMatchesForwardAndFiniteDifferences() {
        int[][] shapes = {{37, 5}, {1, 72}, {2, 3, 13}};
        long seed = 40;
        for (int[] shape : shapes) {
            int n = numel(shape), d = shape[shape.length - 1], rows = n / d;
            float[] x = nonZero(seed++, n), xDot = nonZero(seed++, n), w = uniform(seed++, d, 0.5, 1.5);
            Tensor xt = up("x", x, shape), xd = up("xDot", xDot, shape), wt = up("w", w, d);
            Tensor expected = poisoned("expected", shape), expectedRstd = poisoned("expectedRstd", rows);
            Tensor out = poisoned("out", shape), outDot = poisoned("outDot", shape), rstd = poisoned("rstd", rows);
            NET.rmsNormModulate(xt, wt, EPS, null, 0, 0, expected, expectedRstd);
            NET.rmsNormModulateJvp(xt, xd, wt, EPS, null, null, 0, 0, out, outDot, rstd);
            String what = "rmsNormJvp (plain) rows=" + rows + " D=" + d;
            assertBitIdentical(what + " primal", CPU.download(expected), CPU.download(out));
            assertBitIdentical(what + " rstd", CPU.download(expectedRstd), CPU.download(rstd));
            double[] fd = directional(in -> rmsNorm64(in[0], in[1], null, rows, 0, 0),
                    new double[][] {toDouble(x), toDouble(w)}, new double[][] {toDouble(xDot), null});
            check(what + " tangent", fd, CPU.download(outDot));
        }
        Tensor x = poisoned("x", 2, 3, 4), w = poisoned("w", 4), out = poisoned("out", 2, 3, 4);
        assertThrows(IllegalArgumentException.class, () -> NET.rmsNormModulateJvp(x, null, w, EPS, null,
                poisoned("modDot", 2, 8), 0, 1, out, poisoned("outDot", 2, 3, 4), null));
        assertThrows(ShapeException.class, () -> NET.rmsNormModulateJvp(x, null, w, EPS, null, null, 0, 0, out,
                poisoned("outDot", 2, 3, 5), null));
    }

    // ---------------------------------------------------------------- gated residual

    @Test
    void gatedResidualJvpMatchesForwardAndFiniteDifferences() {
        int[][] cases = {{2, 5, 7, 2}, {1, 1, 9, 5}, {3, 37, 6, 0}};
        long seed = 50;
        for (int[] c : cases) {
            int b = c[0], t = c[1], d = c[2], gate = c[3];
            int n = b * t * d;
            float[] h = nonZero(seed++, n), hDot = nonZero(seed++, n), a = nonZero(seed++, n);
            float[] aDot = nonZero(seed++, n), mod = nonZero(seed++, b * K * d), modDot = nonZero(seed++, b * K * d);
            Tensor expected = up("expected", h.clone(), b, t, d), ht = up("h", h.clone(), b, t, d);
            Tensor hd = up("hDot", hDot.clone(), b, t, d), at = up("a", a, b, t, d), ad = up("aDot", aDot, b, t, d);
            Tensor mt = up("mod", mod, b, K * d), md = up("modDot", modDot, b, K * d);
            NET.gatedResidual(expected, at, mt, gate);
            NET.gatedResidualJvp(ht, hd, at, ad, mt, md, gate);
            String what = "gatedResidualJvp " + b + "x" + t + "x" + d + " gate " + gate;
            assertBitIdentical(what + " primal", CPU.download(expected), CPU.download(ht));
            FiniteDifferences.Forward f = in -> {
                double[] y = in[0].clone();
                for (int i = 0; i < n; i++) {
                    int r = i / d, j = i % d;
                    y[i] += in[2][(r / t) * K * d + gate * d + j] * in[1][i];
                }
                return y;
            };
            double[][] inputs = {toDouble(h), toDouble(a), toDouble(mod)};
            double[] fd = directional(f, inputs, new double[][] {toDouble(hDot), toDouble(aDot), toDouble(modDot)});
            check(what + " tangent", fd, CPU.download(hd));
            Tensor hd2 = up("hDot2", hDot.clone(), b, t, d);
            NET.gatedResidualJvp(up("h2", h.clone(), b, t, d), hd2, at, null, mt, null, gate);
            assertBitIdentical(what + " null tangents leave hDot", hDot, CPU.download(hd2));
            // a = h and aDot = hDot, as the forward allows a = h.
            Tensor self = up("self", a.clone(), b, t, d), selfDot = up("selfDot", aDot.clone(), b, t, d);
            NET.gatedResidualJvp(self, selfDot, self, selfDot, mt, md, gate);
            double[] fdSelf = directional(in -> f.apply(new double[][] {in[0], in[0], in[1]}),
                    new double[][] {toDouble(a), toDouble(mod)}, new double[][] {toDouble(aDot), toDouble(modDot)});
            check(what + " in place tangent", fdSelf, CPU.download(selfDot));
        }
        Tensor h = poisoned("h", 1, 2, 3), hDot = poisoned("hDot", 1, 2, 3), mod = poisoned("mod", 1, 6);
        assertThrows(ShapeException.class, () -> NET.gatedResidualJvp(h, hDot, hDot, null, mod, null, 0));
    }
}
