package facm.backend.cpu;

import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.nonZero;
import static facm.backend.cpu.ReferenceData.numel;
import static facm.backend.cpu.ReferenceData.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The layout, embedding, norm and MLP ops of {@link CpuNetworkOps} against float64 loops written differently here
 * (gather where the op scatters, pow where it uses exp, two passes where it uses one), plus hand-checked cases.
 * Outputs start as NaN so that an element the op forgets to write fails the comparison.
 */
class CpuNetworkOpsTest {
    /** Three threads on a two-core machine: chunks really run concurrently and unevenly. */
    static final CpuBackend CPU = new CpuBackend(3);
    static final NetworkOps NET = new CpuNetworkOps(CPU);

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    static Tensor poisoned(String name, int... shape) {
        return CPU.upload(name, nans(numel(shape)), shape);
    }

    /** |actual − expected| ≤ ulps·ulp(expected) + absolute, element by element, with the index in the message. */
    static void assertClose(String what, double[] expected, float[] actual, double ulps, double absolute) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double tol = ulps * Math.ulp((float) expected[i]) + absolute;
            if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
                fail(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i] + " ± " + tol);
            }
        }
    }

    // ---------------------------------------------------------------- patchify / unpatchify

    /** {B, C, H, W, p}: patch 1 and 2, H ≠ W, single-token and single-channel cases. */
    private static final int[][] IMAGE_CASES = {{2, 3, 4, 6, 2}, {1, 5, 3, 7, 1}, {2, 4, 6, 2, 2}, {1, 1, 2, 2, 2},
            {3, 1, 4, 8, 2}};

    @Test
    void patchifyMatchesConvWeightFlattening() {
        long seed = 100;
        for (int[] c : IMAGE_CASES) {
            int b = c[0], ch = c[1], h = c[2], w = c[3], p = c[4];
            int gw = w / p, tokens = (h / p) * gw, features = ch * p * p;
            float[] x = nonZero(seed++, b * ch * h * w);
            float[] expected = new float[b * tokens * features];
            // Scatter every input pixel to its token and feature.
            for (int bi = 0; bi < b; bi++) {
                for (int ci = 0; ci < ch; ci++) {
                    for (int y = 0; y < h; y++) {
                        for (int xx = 0; xx < w; xx++) {
                            int token = (y / p) * gw + xx / p;
                            int feature = ci * p * p + (y % p) * p + xx % p;
                            expected[(bi * tokens + token) * features + feature] = x[((bi * ch + ci) * h + y) * w + xx];
                        }
                    }
                }
            }
            Tensor out = poisoned("out", b, tokens, features);
            NET.patchify(CPU.upload("x", x, b, ch, h, w), p, out);
            assertArrayEquals(expected, CPU.download(out), "patchify " + java.util.Arrays.toString(c));
        }
    }

    @Test
    void patchifyHandCheckedCase() {
        // x[0,0] = [[0,1,2,3],[4,5,6,7]], patch 2: token j holds the 2×2 block at columns 2j, 2j+1, row-major.
        float[] x = {0, 1, 2, 3, 4, 5, 6, 7};
        Tensor out = poisoned("out", 1, 2, 4);
        NET.patchify(CPU.upload("x", x, 1, 1, 2, 4), 2, out);
        assertArrayEquals(new float[] {0, 1, 4, 5, 2, 3, 6, 7}, CPU.download(out));
    }

    @Test
    void unpatchifyMatchesOutputLayout() {
        long seed = 200;
        for (int[] c : IMAGE_CASES) {
            int b = c[0], ch = c[1], h = c[2], w = c[3], p = c[4];
            int gw = w / p, tokens = (h / p) * gw, features = p * p * ch;
            float[] tok = nonZero(seed++, b * tokens * features);
            double[] expected = new double[b * ch * h * w];
            // Gather every output pixel from its token.
            int i = 0;
            for (int bi = 0; bi < b; bi++) {
                for (int ci = 0; ci < ch; ci++) {
                    for (int y = 0; y < h; y++) {
                        for (int xx = 0; xx < w; xx++) {
                            int token = (y / p) * gw + xx / p;
                            expected[i++] = tok[(bi * tokens + token) * features + ((y % p) * p + xx % p) * ch + ci];
                        }
                    }
                }
            }
            Tensor out = poisoned("out", b, ch, h, w);
            NET.unpatchify(CPU.upload("tokens", tok, b, tokens, features), p, out);
            assertClose("unpatchify " + java.util.Arrays.toString(c), expected, CPU.download(out), 0, 0);
        }
    }

    @Test
    void patchifyAndUnpatchifyInvertEachOtherWhereTheFeatureOrdersCoincide() {
        // The orders c·p² + pr·p + pc and (pr·p + pc)·C + c agree when p = 1 or C = 1.
        int[][] cases = {{2, 3, 4, 6, 1}, {2, 1, 4, 6, 2}, {1, 1, 6, 2, 2}};
        long seed = 300;
        for (int[] c : cases) {
            int b = c[0], ch = c[1], h = c[2], w = c[3], p = c[4];
            int tokens = (h / p) * (w / p), features = ch * p * p;
            float[] x = nonZero(seed++, b * ch * h * w);
            Tensor patches = poisoned("patches", b, tokens, features);
            NET.patchify(CPU.upload("x", x, b, ch, h, w), p, patches);
            Tensor back = poisoned("back", b, ch, h, w);
            NET.unpatchify(patches, p, back);
            assertArrayEquals(x, CPU.download(back), "unpatchify(patchify(x)) " + java.util.Arrays.toString(c));

            float[] tok = nonZero(seed++, b * tokens * features);
            Tensor image = poisoned("image", b, ch, h, w);
            NET.unpatchify(CPU.upload("tokens", tok, b, tokens, features), p, image);
            Tensor again = poisoned("again", b, tokens, features);
            NET.patchify(image, p, again);
            assertArrayEquals(tok, CPU.download(again), "patchify(unpatchify(t)) " + java.util.Arrays.toString(c));
        }
    }

    @Test
    void patchifyFollowedByUnpatchifyNeedsTheFeaturePermutationWhenBothDiffer() {
        int b = 2, ch = 3, h = 4, w = 6, p = 2, tokens = 6, features = 12;
        float[] x = nonZero(400, b * ch * h * w);
        Tensor patches = poisoned("patches", b, tokens, features);
        NET.patchify(CPU.upload("x", x, b, ch, h, w), p, patches);
        float[] conv = CPU.download(patches);
        float[] permuted = new float[conv.length];
        for (int n = 0; n < b * tokens; n++) {
            for (int ci = 0; ci < ch; ci++) {
                for (int s = 0; s < p * p; s++) {
                    permuted[n * features + s * ch + ci] = conv[n * features + ci * p * p + s];
                }
            }
        }
        Tensor back = poisoned("back", b, ch, h, w);
        NET.unpatchify(CPU.upload("permuted", permuted, b, tokens, features), p, back);
        assertArrayEquals(x, CPU.download(back));
    }

    // ---------------------------------------------------------------- time features and embedding

    @Test
    void timestepEmbeddingMatchesFloat64() {
        float[] t = {0f, 0.25f, 1f, 1.5f, 2f, -0.3f, 537f};
        for (int dim : new int[] {256, 6, 2}) {
            for (float period : new float[] {10000f, 100f}) {
                int half = dim / 2;
                double[] expected = new double[t.length * dim];
                for (int k = 0; k < half; k++) {
                    double f = Math.pow(period, -(double) k / half);
                    for (int b = 0; b < t.length; b++) {
                        expected[b * dim + k] = Math.cos(t[b] * f);
                        expected[b * dim + half + k] = Math.sin(t[b] * f);
                    }
                }
                Tensor out = poisoned("out", t.length, dim);
                NET.timestepEmbedding(CPU.upload("t", t, t.length), period, out);
                assertClose("timestep dim " + dim + " period " + period, expected, CPU.download(out), 1, 1e-12);
            }
        }
    }

    @Test
    void timestepEmbeddingKnownValues() {
        Tensor out = poisoned("out", 2, 4);
        NET.timestepEmbedding(CPU.upload("t", new float[] {0f, 1f}, 2), 10000f, out);
        // t = 0: cos = 1, sin = 0. t = 1, half = 2: f = [1, 10000^(−1/2) = 0.01].
        float[] expected = {1f, 1f, 0f, 0f,
                (float) 0.5403023058681398, (float) 0.9999500004166653,
                (float) 0.8414709848078965, (float) 0.009999833334166664};
        assertArrayEquals(expected, CPU.download(out));
    }

    @Test
    void embeddingCopiesRowsAndRejectsBadIdsBeforeWriting() {
        int v = 11, d = 37;
        float[] table = nonZero(500, v * d);
        int[] ids = {0, 10, 3, 3, 10, 7, 0};
        Tensor out = poisoned("out", ids.length, d);
        NET.embedding(CPU.upload("table", table, v, d), CPU.upload("ids", ids, ids.length), out);
        float[] got = CPU.download(out);
        for (int i = 0; i < ids.length; i++) {
            for (int j = 0; j < d; j++) {
                assertEquals(table[ids[i] * d + j], got[i * d + j], "row " + i + " column " + j);
            }
        }
        Tensor untouched = poisoned("out", 2, d);
        IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> NET.embedding(
                CPU.upload("table", table, v, d), CPU.upload("ids", new int[] {2, 11}, 2), untouched));
        assertTrue(e.getMessage().contains("embedding") && e.getMessage().contains("11"), e.getMessage());
        assertTrue(Float.isNaN(CPU.download(untouched)[0]), "out must stay untouched");
    }

    // ---------------------------------------------------------------- RMSNorm, adaLN, gated residual

    /** out = x·ρ⊙w⊙(1+scale)+shift in float64 with the mean of squares summed backwards in a separate pass. */
    private static double[] rmsReference(float[] x, float[] w, float eps, float[] mod, int modWidth, int shiftChunk,
                                         int scaleChunk, int tokens, int d, double[] rhoOut) {
        int rows = x.length / d;
        double[] rho = new double[rows];
        for (int r = 0; r < rows; r++) {
            double ss = 0;
            for (int j = d - 1; j >= 0; j--) {
                ss += (double) x[r * d + j] * x[r * d + j];
            }
            rho[r] = 1.0 / Math.sqrt(ss / d + eps);
        }
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            int r = i / d, j = i % d;
            double n = x[i] * rho[r] * w[j];
            if (mod != null) {
                int b = r / tokens;
                n = n * (1.0 + mod[b * modWidth + scaleChunk * d + j]) + mod[b * modWidth + shiftChunk * d + j];
            }
            out[i] = n;
        }
        System.arraycopy(rho, 0, rhoOut, 0, rows);
        return out;
    }

    @Test
    void plainRmsNormMatchesFloat64AnyRank() {
        int[][] shapes = {{3, 37, 5}, {7, 64}, {72}, {1, 1, 1}};
        long seed = 600;
        for (int[] shape : shapes) {
            int n = numel(shape), d = shape[shape.length - 1], rows = n / d;
            float[] x = nonZero(seed++, n), w = nonZero(seed++, d);
            double[] rho = new double[rows];
            double[] expected = rmsReference(x, w, 1e-6f, null, 0, 0, 0, rows, d, rho);
            Tensor out = poisoned("out", shape);
            Tensor rstd = poisoned("rstd", rows);
            NET.rmsNormModulate(CPU.upload("x", x, shape), CPU.upload("w", w, d), 1e-6f, null, 0, 0, out, rstd);
            assertClose("rmsnorm " + java.util.Arrays.toString(shape), expected, CPU.download(out), 1, 1e-12);
            assertClose("rstd " + java.util.Arrays.toString(shape), rho, CPU.download(rstd), 1, 0);
        }
    }

    @Test
    void modulatedRmsNormReadsTheRightChunks() {
        int b = 2, t = 37, d = 24, k = 6;
        int[][] chunkPairs = {{0, 1}, {3, 4}, {5, 2}};
        long seed = 700;
        for (int[] chunks : chunkPairs) {
            float[] x = nonZero(seed++, b * t * d), w = nonZero(seed++, d), mod = nonZero(seed++, b * k * d);
            double[] rho = new double[b * t];
            double[] expected = rmsReference(x, w, 1e-6f, mod, k * d, chunks[0], chunks[1], t, d, rho);
            Tensor out = poisoned("out", b, t, d);
            Tensor rstd = poisoned("rstd", b, t);
            NET.rmsNormModulate(CPU.upload("x", x, b, t, d), CPU.upload("w", w, d), 1e-6f,
                    CPU.upload("mod", mod, b, k * d), chunks[0], chunks[1], out, rstd);
            assertClose("modulated chunks " + chunks[0] + "," + chunks[1], expected, CPU.download(out), 1, 1e-12);
            assertClose("rstd", rho, CPU.download(rstd), 1, 0);

            // In place (out = x), without rstd: same values.
            Tensor inPlace = CPU.upload("x", x, b, t, d);
            NET.rmsNormModulate(inPlace, CPU.upload("w", w, d), 1e-6f, CPU.upload("mod", mod, b, k * d), chunks[0],
                    chunks[1], inPlace, null);
            assertArrayEquals(CPU.download(out), CPU.download(inPlace), "in place");
        }
    }

    @Test
    void gatedResidualAddsGateTimesBranch() {
        int b = 3, t = 5, d = 16, k = 6, gate = 2;
        float[] h = nonZero(800, b * t * d), a = nonZero(801, b * t * d), mod = nonZero(802, b * k * d);
        double[] expected = new double[h.length];
        double[] selfExpected = new double[h.length];
        for (int bi = 0; bi < b; bi++) {
            for (int j = 0; j < d; j++) {
                double g = mod[bi * k * d + gate * d + j];
                for (int ti = 0; ti < t; ti++) {
                    int i = (bi * t + ti) * d + j;
                    expected[i] = h[i] + g * a[i];
                    selfExpected[i] = h[i] * (1.0 + g);
                }
            }
        }
        Tensor ht = CPU.upload("h", h, b, t, d);
        Tensor modT = CPU.upload("mod", mod, b, k * d);
        NET.gatedResidual(ht, CPU.upload("a", a, b, t, d), modT, gate);
        assertClose("gatedResidual", expected, CPU.download(ht), 1, 0);
        Tensor self = CPU.upload("h", h, b, t, d);
        NET.gatedResidual(self, self, modT, gate);
        assertClose("gatedResidual a = h", selfExpected, CPU.download(self), 1, 0);
    }

    // ---------------------------------------------------------------- SwiGLU

    @Test
    void swigluMatchesFloat64() {
        int[][] shapes = {{37, 48}, {2, 3, 10}, {1, 2}};
        long seed = 900;
        for (int[] shape : shapes) {
            int n = numel(shape), twoF = shape[shape.length - 1], f = twoF / 2, rows = n / twoF;
            float[] gu = uniform(seed++, n, -30, 30);
            double[] expected = new double[rows * f];
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < f; j++) {
                    double g = gu[r * twoF + j];
                    double sigmoid = 1.0 / (1.0 + Math.exp(-g));
                    expected[r * f + j] = g * sigmoid * gu[r * twoF + f + j];
                }
            }
            int[] outShape = shape.clone();
            outShape[outShape.length - 1] = f;
            Tensor out = poisoned("out", outShape);
            NET.swiglu(CPU.upload("gu", gu, shape), out);
            assertClose("swiglu " + java.util.Arrays.toString(shape), expected, CPU.download(out), 1, 1e-30);
        }
    }

    // ---------------------------------------------------------------- validation

    private static void assertShapeError(String op, String fragment, Runnable call) {
        ShapeException e = assertThrows(ShapeException.class, call::run);
        assertTrue(e.getMessage().startsWith(op) && e.getMessage().contains(fragment),
                "message should name " + op + " and " + fragment + ": " + e.getMessage());
    }

    @Test
    void badShapesNameTheOpAndTensors() {
        Tensor image = CPU.upload("x", nonZero(1, 2 * 3 * 4 * 5), 2, 3, 4, 5);
        assertShapeError("patchify", "x f32[2,3,4,5]", () -> NET.patchify(image, 2, poisoned("out", 2, 6, 12)));
        assertShapeError("patchify", "out", () -> NET.patchify(image, 1, poisoned("out", 2, 20, 4)));
        assertShapeError("unpatchify", "tokens", () -> NET.unpatchify(poisoned("tokens", 2, 20, 4), 1, image));
        assertShapeError("timestepEmbedding", "dim even",
                () -> NET.timestepEmbedding(poisoned("t", 2), 1e4f, poisoned("out", 2, 5)));
        Tensor ids = CPU.upload("ids", new int[] {0}, 1);
        assertShapeError("embedding", "ids", () -> NET.embedding(poisoned("table", 3, 4), poisoned("ids", 1),
                poisoned("out", 1, 4)));
        assertShapeError("embedding", "out", () -> NET.embedding(poisoned("table", 3, 4), ids, poisoned("out", 1, 5)));

        Tensor x = poisoned("x", 2, 3, 4);
        Tensor w = poisoned("w", 4);
        assertShapeError("rmsNormModulate", "weight", () -> NET.rmsNormModulate(x, poisoned("w", 5), 1e-6f, null,
                0, 0, poisoned("out", 2, 3, 4), null));
        assertShapeError("rmsNormModulate", "scaleChunk 6", () -> NET.rmsNormModulate(x, w, 1e-6f,
                poisoned("mod", 2, 24), 0, 6, poisoned("out", 2, 3, 4), null));
        assertShapeError("rmsNormModulate", "mod", () -> NET.rmsNormModulate(x, w, 1e-6f, poisoned("mod", 3, 24), 0,
                1, poisoned("out", 2, 3, 4), null));
        assertShapeError("rmsNormModulate", "rstd", () -> NET.rmsNormModulate(x, w, 1e-6f, null, 0, 0,
                poisoned("out", 2, 3, 4), poisoned("rstd", 5)));
        Tensor column = poisoned("column", 6, 1);
        assertShapeError("rmsNormModulate", "share storage", () -> NET.rmsNormModulate(column, poisoned("w", 1),
                1e-6f, null, 0, 0, poisoned("out", 6, 1), column.reshape(6)));
        assertShapeError("gatedResidual", "gateChunk -1", () -> NET.gatedResidual(x, poisoned("a", 2, 3, 4),
                poisoned("mod", 2, 8), -1));
        assertShapeError("gatedResidual", "a vs h", () -> NET.gatedResidual(x, poisoned("a", 2, 3, 5),
                poisoned("mod", 2, 8), 0));
        assertShapeError("swiglu", "even", () -> NET.swiglu(poisoned("gu", 3, 7), poisoned("out", 3, 3)));
        Tensor square = poisoned("x", 1, 1, 2, 2);
        assertShapeError("patchify", "share storage", () -> NET.patchify(square, 2, square.reshape(1, 1, 4)));
        assertShapeError("swiglu", "dtype", () -> NET.swiglu(CPU.upload("gu", new int[] {1, 2}, 1, 2),
                poisoned("out", 1, 1)));
    }
}
