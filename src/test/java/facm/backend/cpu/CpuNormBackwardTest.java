package facm.backend.cpu;

import static facm.backend.cpu.FiniteDifferences.assertAccumulatedTwice;
import static facm.backend.cpu.FiniteDifferences.assertBitIdentical;
import static facm.backend.cpu.FiniteDifferences.check;
import static facm.backend.cpu.FiniteDifferences.checkForward;
import static facm.backend.cpu.FiniteDifferences.coordinates;
import static facm.backend.cpu.FiniteDifferences.gradient;
import static facm.backend.cpu.FiniteDifferences.toDouble;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.nonZero;
import static facm.backend.cpu.ReferenceData.numel;
import static facm.backend.cpu.ReferenceData.uniform;
import static org.junit.jupiter.api.Assertions.assertThrows;

import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Backward of rmsNormModulate (with and without adaLN modulation) and gatedResidual against central finite differences
 * of float64 forwards written here ({@link FiniteDifferences}: max-norm relative error below 1e-4). Also the gradient
 * conventions: activation gradients overwritten (they start as NaN), parameter gradients accumulated.
 */
class CpuNormBackwardTest {
    private static final CpuBackend CPU = new CpuBackend(3);
    private static final NetworkOps NET = CPU.network();
    private static final float EPS = 1e-6f;
    /** Chunks per mod row, as in a DiT block. */
    private static final int K = 6;
    /** Coordinates checked per input: all of a small tensor, a random subset of a larger one. */
    private static final int COORDS = 200;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    private static Tensor poisoned(String name, int... shape) {
        return CPU.upload(name, nans(numel(shape)), shape);
    }

    // ---------------------------------------------------------------- rmsNormModulate

    /** out = x·(mean(x²) + eps)^(−½)·w·(1 + scale) + shift, the statistic in a separate pass; mod null: plain. */
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

    /** {B, T, D, shiftChunk, scaleChunk}; shift = scale once (both add into one chunk). */
    private static final int[][] MOD_CASES = {{2, 5, 7, 0, 1}, {1, 1, 9, 3, 4}, {2, 37, 6, 2, 2}};

    @Test
    void modulatedRmsNormBackwardMatchesFiniteDifferences() {
        long seed = 100;
        for (int[] c : MOD_CASES) {
            int b = c[0], t = c[1], d = c[2], shift = c[3], scale = c[4];
            String name = "rmsNormModulateBackward " + Arrays.toString(c);
            float[] x = nonZero(seed++, b * t * d), w = nonZero(seed++, d);
            float[] mod = uniform(seed++, b * K * d, -0.5, 0.5), r = nonZero(seed++, b * t * d);
            Tensor xt = CPU.upload("x", x, b, t, d), wt = CPU.upload("w", w, d), mt = CPU.upload("mod", mod, b, K * d);
            Tensor out = poisoned("out", b, t, d), rstd = poisoned("rstd", b, t);
            NET.rmsNormModulate(xt, wt, EPS, mt, shift, scale, out, rstd);
            double[][] in = {toDouble(x), toDouble(w), toDouble(mod)};
            FiniteDifferences.Forward f = v -> rmsNorm64(v[0], v[1], v[2], t, shift, scale);
            checkForward(name, f.apply(in), CPU.download(out));

            Tensor gradOut = CPU.upload("gradOut", r, b, t, d);
            Tensor gradX = poisoned("gradX", b, t, d);
            Tensor gradW = CPU.zeros(DType.F32, d), gradMod = CPU.zeros(DType.F32, b, K * d);
            NET.rmsNormModulateBackward(xt, wt, EPS, mt, shift, scale, rstd, gradOut, gradX, gradW, gradMod);
            double[] rd = toDouble(r);
            int[] xs = coordinates(x.length, COORDS, seed);
            check(name + " gradX", gradient(f, in, 0, rd, xs), CPU.download(gradX), xs);
            check(name + " gradWeight", gradient(f, in, 1, rd, coordinates(d, d, 0)), CPU.download(gradW));
            check(name + " gradMod", gradient(f, in, 2, rd, coordinates(mod.length, mod.length, 0)),
                    CPU.download(gradMod));

            float[] startW = nonZero(seed++, d), startMod = nonZero(seed++, b * K * d);
            Tensor accW = CPU.upload("gradW", startW, d), accMod = CPU.upload("gradMod", startMod, b, K * d);
            for (int call = 0; call < 2; call++) {
                NET.rmsNormModulateBackward(xt, wt, EPS, mt, shift, scale, rstd, gradOut, null, accW, accMod);
            }
            assertAccumulatedTwice(name + " gradWeight", startW, CPU.download(gradW), CPU.download(accW));
            assertAccumulatedTwice(name + " gradMod", startMod, CPU.download(gradMod), CPU.download(accMod));

            Tensor inPlace = CPU.upload("gradOut", r, b, t, d);
            NET.rmsNormModulateBackward(xt, wt, EPS, mt, shift, scale, rstd, inPlace, inPlace, null, null);
            assertBitIdentical(name + " gradX in place", CPU.download(gradX), CPU.download(inPlace));
        }
    }

    @Test
    void plainRmsNormBackwardMatchesFiniteDifferences() {
        int[][] shapes = {{37, 13}, {3, 5, 6}, {1, 1, 5}};
        long seed = 200;
        for (int[] shape : shapes) {
            int d = shape[shape.length - 1], rows = numel(shape) / d;
            String name = "rmsNormBackward (no mod) " + Arrays.toString(shape);
            float[] x = nonZero(seed++, numel(shape)), w = nonZero(seed++, d), r = nonZero(seed++, numel(shape));
            Tensor xt = CPU.upload("x", x, shape), wt = CPU.upload("w", w, d);
            Tensor out = poisoned("out", shape), rstd = poisoned("rstd", rows);
            NET.rmsNormModulate(xt, wt, EPS, null, 0, 0, out, rstd);
            double[][] in = {toDouble(x), toDouble(w)};
            FiniteDifferences.Forward f = v -> rmsNorm64(v[0], v[1], null, rows, 0, 0);
            checkForward(name, f.apply(in), CPU.download(out));

            Tensor gradX = poisoned("gradX", shape), gradW = CPU.zeros(DType.F32, d);
            NET.rmsNormModulateBackward(xt, wt, EPS, null, 0, 0, rstd, CPU.upload("gradOut", r, shape), gradX, gradW,
                    null);
            int[] xs = coordinates(x.length, COORDS, seed);
            check(name + " gradX", gradient(f, in, 0, toDouble(r), xs), CPU.download(gradX), xs);
            check(name + " gradWeight", gradient(f, in, 1, toDouble(r), coordinates(d, d, 0)), CPU.download(gradW));
        }
    }

    @Test
    void rmsNormBackwardDoesNotDependOnTheThreadCount() {
        int b = 2, t = 40, d = 200;
        float[] x = nonZero(300, b * t * d), w = nonZero(301, d), mod = uniform(302, b * K * d, -0.5, 0.5);
        float[] r = nonZero(303, b * t * d), startW = nonZero(304, d), startMod = nonZero(305, b * K * d);
        float[][][] results = new float[2][][];
        int[] threads = {1, 3};
        for (int n = 0; n < 2; n++) {
            try (CpuBackend cpu = new CpuBackend(threads[n])) {
                Tensor xt = cpu.upload("x", x, b, t, d), wt = cpu.upload("w", w, d);
                Tensor mt = cpu.upload("mod", mod, b, K * d), rstd = cpu.empty(DType.F32, b, t);
                cpu.network().rmsNormModulate(xt, wt, EPS, mt, 0, 1, cpu.empty(DType.F32, b, t, d), rstd);
                Tensor gx = cpu.empty(DType.F32, b, t, d), gw = cpu.upload("gw", startW, d);
                Tensor gm = cpu.upload("gm", startMod, b, K * d);
                cpu.network().rmsNormModulateBackward(xt, wt, EPS, mt, 0, 1, rstd, cpu.upload("g", r, b, t, d), gx,
                        gw, gm);
                results[n] = new float[][] {cpu.download(gx), cpu.download(gw), cpu.download(gm)};
            }
        }
        for (int i = 0; i < 3; i++) {
            assertBitIdentical("rmsNormModulateBackward 1 vs 3 threads, output " + i, results[0][i], results[1][i]);
        }
    }

    @Test
    void rmsNormBackwardRejectsMissingStatisticsAndStrayModGradients() {
        Tensor x = CPU.upload("x", nonZero(1, 2 * 3 * 4), 2, 3, 4), w = CPU.upload("w", nonZero(2, 4), 4);
        Tensor g = CPU.upload("g", nonZero(3, 24), 2, 3, 4), rstd = CPU.upload("rstd", nonZero(4, 6), 2, 3);
        assertThrows(NullPointerException.class,
                () -> NET.rmsNormModulateBackward(x, w, EPS, null, 0, 0, null, g, poisoned("gx", 2, 3, 4), null, null));
        assertThrows(IllegalArgumentException.class, () -> NET.rmsNormModulateBackward(x, w, EPS, null, 0, 0, rstd, g,
                null, null, CPU.zeros(DType.F32, 2, 8)));
        assertThrows(ShapeException.class, () -> NET.rmsNormModulateBackward(x, w, EPS, null, 0, 0, rstd, g, null,
                CPU.zeros(DType.F32, 5), null));
        assertThrows(ShapeException.class, () -> NET.rmsNormModulateBackward(x, w, EPS, null, 0, 0,
                CPU.zeros(DType.F32, 5), g, poisoned("gx", 2, 3, 4), null, null));
    }

    // ---------------------------------------------------------------- gatedResidual

    /** {B, T, D, gateChunk}. */
    private static final int[][] GATE_CASES = {{2, 5, 7, 2}, {1, 1, 9, 0}, {2, 37, 3, 5}};

    @Test
    void gatedResidualBackwardMatchesFiniteDifferences() {
        long seed = 400;
        for (int[] c : GATE_CASES) {
            int b = c[0], t = c[1], d = c[2], gate = c[3];
            String name = "gatedResidualBackward " + Arrays.toString(c);
            float[] h = nonZero(seed++, b * t * d), a = nonZero(seed++, b * t * d);
            float[] mod = nonZero(seed++, b * K * d), r = nonZero(seed++, b * t * d);
            FiniteDifferences.Forward f = v -> {
                double[] out = new double[h.length];
                for (int i = 0; i < out.length; i++) {
                    int batch = i / (t * d), j = i % d;
                    out[i] = h[i] + v[1][batch * K * d + gate * d + j] * v[0][i];
                }
                return out;
            };
            double[][] in = {toDouble(a), toDouble(mod)};
            Tensor ht = CPU.upload("h", h, b, t, d), at = CPU.upload("a", a, b, t, d);
            Tensor mt = CPU.upload("mod", mod, b, K * d);
            NET.gatedResidual(ht, at, mt, gate);
            checkForward(name, f.apply(in), CPU.download(ht));

            Tensor gradH = CPU.upload("gradH", r, b, t, d), gradA = poisoned("gradA", b, t, d);
            Tensor gradMod = CPU.zeros(DType.F32, b, K * d);
            NET.gatedResidualBackward(at, mt, gate, gradH, gradA, gradMod);
            int[] as = coordinates(a.length, COORDS, seed);
            check(name + " gradA", gradient(f, in, 0, toDouble(r), as), CPU.download(gradA), as);
            check(name + " gradMod", gradient(f, in, 1, toDouble(r), coordinates(mod.length, mod.length, 0)),
                    CPU.download(gradMod));

            float[] start = nonZero(seed++, b * K * d);
            Tensor acc = CPU.upload("gradMod", start, b, K * d);
            NET.gatedResidualBackward(at, mt, gate, gradH, null, acc);
            NET.gatedResidualBackward(at, mt, gate, gradH, null, acc);
            assertAccumulatedTwice(name + " gradMod", start, CPU.download(gradMod), CPU.download(acc));

            NET.gatedResidualBackward(at, mt, gate, gradH, gradH, null);
            assertBitIdentical(name + " gradA in place", CPU.download(gradA), CPU.download(gradH));
        }
    }

    @Test
    void gatedResidualBackwardRejectsBadShapesAndSharing() {
        Tensor a = CPU.upload("a", nonZero(1, 2 * 3 * 4), 2, 3, 4), mod = CPU.upload("mod", nonZero(2, 48), 2, 24);
        Tensor g = CPU.upload("g", nonZero(3, 24), 2, 3, 4);
        assertThrows(ShapeException.class, () -> NET.gatedResidualBackward(a, mod, 6, g, null, null));
        assertThrows(ShapeException.class,
                () -> NET.gatedResidualBackward(a, mod, 1, g, null, CPU.zeros(DType.F32, 2, 20)));
        assertThrows(ShapeException.class, () -> NET.gatedResidualBackward(a, mod, 1, g, a, null));
        assertThrows(ShapeException.class, () -> NET.gatedResidualBackward(a, mod, 1, g, null, mod));
    }
}
