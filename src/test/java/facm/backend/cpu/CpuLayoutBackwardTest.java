package facm.backend.cpu;

import static facm.backend.cpu.FiniteDifferences.assertAccumulatedTwice;
import static facm.backend.cpu.FiniteDifferences.assertBitIdentical;
import static facm.backend.cpu.FiniteDifferences.check;
import static facm.backend.cpu.FiniteDifferences.checkForward;
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
 * Backward of the layout and elementwise layers (patchify, unpatchify, embedding, SwiGLU, SiLU) against central finite
 * differences of float64 forwards written here (see {@link FiniteDifferences} for the error measure and tolerance).
 * Activation gradients start as NaN, so an element the backward forgets to write fails.
 */
class CpuLayoutBackwardTest {
    private static final CpuBackend CPU = new CpuBackend(3);
    private static final NetworkOps NET = CPU.network();

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    private static Tensor poisoned(String name, int... shape) {
        return CPU.upload(name, nans(numel(shape)), shape);
    }

    // ---------------------------------------------------------------- patchify / unpatchify

    /** {B, C, H, W, p}: patch 1 and 2, H ≠ W, a single token. */
    private static final int[][] IMAGE_CASES = {{2, 3, 4, 6, 2}, {1, 5, 3, 7, 1}, {1, 3, 2, 2, 2}};

    /** Gather form: each token feature c·p² + pr·p + pc reads its pixel. */
    private static double[] patchify64(double[] x, int[] c) {
        int b = c[0], ch = c[1], h = c[2], w = c[3], p = c[4], gw = w / p, tokens = (h / p) * gw, f = ch * p * p;
        double[] out = new double[b * tokens * f];
        for (int i = 0; i < out.length; i++) {
            int feature = i % f, token = (i / f) % tokens, bi = i / (f * tokens);
            int chan = feature / (p * p), pr = (feature / p) % p, pc = feature % p;
            int y = (token / gw) * p + pr, xx = (token % gw) * p + pc;
            out[i] = x[((bi * ch + chan) * h + y) * w + xx];
        }
        return out;
    }

    /** Gather form: each pixel reads token feature (pr·p + pc)·C + c. */
    private static double[] unpatchify64(double[] tokens, int[] c) {
        int b = c[0], ch = c[1], h = c[2], w = c[3], p = c[4], gw = w / p, count = (h / p) * gw, f = ch * p * p;
        double[] out = new double[b * ch * h * w];
        for (int i = 0; i < out.length; i++) {
            int xx = i % w, y = (i / w) % h, chan = (i / (w * h)) % ch, bi = i / (w * h * ch);
            int token = (y / p) * gw + xx / p, feature = ((y % p) * p + xx % p) * ch + chan;
            out[i] = tokens[(bi * count + token) * f + feature];
        }
        return out;
    }

    @Test
    void patchifyBackwardMatchesFiniteDifferences() {
        long seed = 10;
        for (int[] c : IMAGE_CASES) {
            int[] image = {c[0], c[1], c[2], c[3]};
            int[] tokens = {c[0], (c[2] / c[4]) * (c[3] / c[4]), c[1] * c[4] * c[4]};
            float[] x = nonZero(seed++, numel(image));
            float[] r = nonZero(seed++, numel(tokens));
            Tensor out = poisoned("out", tokens);
            NET.patchify(CPU.upload("x", x, image), c[4], out);
            checkForward("patchify " + Arrays.toString(c), patchify64(toDouble(x), c), CPU.download(out));

            double[] fd = gradient(in -> patchify64(in[0], c), new double[][] {toDouble(x)}, 0, toDouble(r),
                    FiniteDifferences.coordinates(x.length, x.length, 0));
            Tensor gradX = poisoned("gradX", image);
            NET.patchifyBackward(CPU.upload("gradTokens", r, tokens), c[4], gradX);
            check("patchifyBackward gradX " + Arrays.toString(c), fd, CPU.download(gradX));
        }
    }

    @Test
    void unpatchifyBackwardMatchesFiniteDifferences() {
        long seed = 20;
        for (int[] c : IMAGE_CASES) {
            int[] image = {c[0], c[1], c[2], c[3]};
            int[] tokens = {c[0], (c[2] / c[4]) * (c[3] / c[4]), c[1] * c[4] * c[4]};
            float[] t = nonZero(seed++, numel(tokens));
            float[] r = nonZero(seed++, numel(image));
            Tensor out = poisoned("out", image);
            NET.unpatchify(CPU.upload("tokens", t, tokens), c[4], out);
            checkForward("unpatchify " + Arrays.toString(c), unpatchify64(toDouble(t), c), CPU.download(out));

            double[] fd = gradient(in -> unpatchify64(in[0], c), new double[][] {toDouble(t)}, 0, toDouble(r),
                    FiniteDifferences.coordinates(t.length, t.length, 0));
            Tensor gradTokens = poisoned("gradTokens", tokens);
            NET.unpatchifyBackward(CPU.upload("gradOut", r, image), c[4], gradTokens);
            check("unpatchifyBackward gradTokens " + Arrays.toString(c), fd, CPU.download(gradTokens));
        }
    }

    @Test
    void patchBackwardsRejectMismatchedShapesAndSkipNullGradients() {
        Tensor gradTokens = CPU.upload("gradTokens", nonZero(1, 2 * 6 * 12), 2, 6, 12);
        assertThrows(ShapeException.class, () -> NET.patchifyBackward(gradTokens, 2, poisoned("gradX", 2, 3, 4, 4)));
        assertThrows(ShapeException.class, () -> NET.patchifyBackward(gradTokens, 3, poisoned("gradX", 2, 3, 4, 6)));
        NET.patchifyBackward(gradTokens, 2, null);
        NET.unpatchifyBackward(CPU.upload("gradOut", nonZero(2, 2 * 3 * 4 * 6), 2, 3, 4, 6), 2, null);
    }

    // ---------------------------------------------------------------- embedding

    private static double[] embedding64(double[] table, int[] ids, int d) {
        double[] out = new double[ids.length * d];
        for (int b = 0; b < ids.length; b++) {
            for (int j = 0; j < d; j++) {
                out[b * d + j] = table[ids[b] * d + j];
            }
        }
        return out;
    }

    @Test
    void embeddingBackwardAddsRepeatedIdsAndAccumulates() {
        int v = 7, d = 5;
        int[] ids = {3, 1, 3, 3, 0, 6};
        float[] table = nonZero(30, v * d);
        float[] r = nonZero(31, ids.length * d);
        Tensor idt = CPU.upload("ids", ids, ids.length);
        Tensor out = poisoned("out", ids.length, d);
        NET.embedding(CPU.upload("table", table, v, d), idt, out);
        checkForward("embedding", embedding64(toDouble(table), ids, d), CPU.download(out));

        double[] fd = gradient(in -> embedding64(in[0], ids, d), new double[][] {toDouble(table)}, 0, toDouble(r),
                FiniteDifferences.coordinates(table.length, table.length, 0));
        Tensor gradOut = CPU.upload("gradOut", r, ids.length, d);
        Tensor gradTable = CPU.zeros(DType.F32, v, d);
        NET.embeddingBackward(gradOut, idt, gradTable);
        float[] once = CPU.download(gradTable);
        check("embeddingBackward gradTable (ids repeat 3x)", fd, once);

        float[] start = nonZero(32, v * d);
        Tensor accumulated = CPU.upload("gradTable", start, v, d);
        NET.embeddingBackward(gradOut, idt, accumulated);
        NET.embeddingBackward(gradOut, idt, accumulated);
        assertAccumulatedTwice("embeddingBackward", start, once, CPU.download(accumulated));

        assertThrows(IndexOutOfBoundsException.class,
                () -> NET.embeddingBackward(gradOut, CPU.upload("ids", new int[] {0, 1, 2, 7, 0, 0}, 6), gradTable));
    }

    @Test
    void embeddingBackwardDoesNotDependOnTheThreadCount() {
        int v = 50, d = 33, b = 300;
        int[] ids = new int[b];
        float[] u = uniform(40, b, 0, v);
        for (int i = 0; i < b; i++) {
            ids[i] = (int) u[i];
        }
        float[] g = nonZero(41, b * d), start = nonZero(42, v * d);
        float[][] results = new float[2][];
        int[] threads = {1, 3};
        for (int n = 0; n < 2; n++) {
            try (CpuBackend cpu = new CpuBackend(threads[n])) {
                Tensor table = cpu.upload("gradTable", start, v, d);
                cpu.network().embeddingBackward(cpu.upload("gradOut", g, b, d), cpu.upload("ids", ids, b), table);
                results[n] = cpu.download(table);
            }
        }
        assertBitIdentical("embeddingBackward 1 vs 3 threads", results[0], results[1]);
    }

    // ---------------------------------------------------------------- SwiGLU and SiLU

    /** σ(x) = ½(1 + tanh(x/2)): another formula than the op's 1/(1 + e^−x). */
    private static double sigmoid(double x) {
        return 0.5 * (1 + Math.tanh(x / 2));
    }

    private static double[] swiglu64(double[] gu, int f) {
        double[] out = new double[gu.length / 2];
        for (int i = 0; i < out.length; i++) {
            int row = i / f, j = i % f;
            double g = gu[row * 2 * f + j], u = gu[row * 2 * f + f + j];
            out[i] = g * sigmoid(g) * u;
        }
        return out;
    }

    @Test
    void swigluBackwardMatchesFiniteDifferences() {
        int[][] shapes = {{3, 5, 14}, {1, 2}, {37, 6}};
        long seed = 50;
        for (int[] shape : shapes) {
            int f = shape[shape.length - 1] / 2;
            int[] half = shape.clone();
            half[half.length - 1] = f;
            float[] gu = uniform(seed++, numel(shape), -4, 4);
            float[] r = nonZero(seed++, numel(half));
            Tensor guT = CPU.upload("gu", gu, shape);
            Tensor out = poisoned("out", half);
            NET.swiglu(guT, out);
            checkForward("swiglu " + Arrays.toString(shape), swiglu64(toDouble(gu), f), CPU.download(out));

            double[] fd = gradient(in -> swiglu64(in[0], f), new double[][] {toDouble(gu)}, 0, toDouble(r),
                    FiniteDifferences.coordinates(gu.length, gu.length, 0));
            Tensor gradGu = poisoned("gradGu", shape);
            NET.swigluBackward(guT, CPU.upload("gradOut", r, half), gradGu);
            check("swigluBackward gradGu " + Arrays.toString(shape), fd, CPU.download(gradGu));
        }
    }

    @Test
    void siluBackwardMatchesFiniteDifferencesAndMayOverwriteGradOut() {
        int[][] shapes = {{37}, {3, 5, 7}};
        long seed = 60;
        for (int[] shape : shapes) {
            float[] x = uniform(seed++, numel(shape), -6, 6);
            float[] r = nonZero(seed++, numel(shape));
            Tensor xt = CPU.upload("x", x, shape);
            double[] fd = gradient(in -> {
                double[] out = new double[in[0].length];
                for (int i = 0; i < out.length; i++) {
                    out[i] = in[0][i] * sigmoid(in[0][i]);
                }
                return out;
            }, new double[][] {toDouble(x)}, 0, toDouble(r), FiniteDifferences.coordinates(x.length, x.length, 0));
            Tensor gradIn = poisoned("gradIn", shape);
            NET.siluBackward(xt, CPU.upload("gradOut", r, shape), gradIn);
            float[] separate = CPU.download(gradIn);
            check("siluBackward gradIn " + Arrays.toString(shape), fd, separate);

            Tensor inPlace = CPU.upload("gradOut", r, shape);
            NET.siluBackward(xt, inPlace, inPlace);
            assertBitIdentical("siluBackward in place", separate, CPU.download(inPlace));
        }
    }

    @Test
    void mlpBackwardsRejectMismatchedShapes() {
        Tensor gu = CPU.upload("gu", nonZero(70, 3 * 8), 3, 8);
        assertThrows(ShapeException.class,
                () -> NET.swigluBackward(gu, CPU.upload("gradOut", nonZero(71, 3 * 3), 3, 3), poisoned("g", 3, 8)));
        assertThrows(ShapeException.class,
                () -> NET.swigluBackward(gu, CPU.upload("gradOut", nonZero(72, 3 * 4), 3, 4), poisoned("g", 3, 4)));
        assertThrows(ShapeException.class, () -> NET.siluBackward(gu, poisoned("gradOut", 3, 8), poisoned("g", 8, 3)));
    }
}
