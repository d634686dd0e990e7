package facm.backend.cuda;

import facm.backend.cpu.CpuNetworkOps;
import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertUlps;
import static facm.backend.cuda.GpuCpuPair.assertWithin;
import static facm.backend.cuda.GpuCpuPair.numel;
import static facm.backend.cuda.GpuCpuPair.values;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kernels/embed.cu, rmsnorm.cu, adaln.cu and swiglu.cu against the CPU reference (CpuNetworkOps, fp64 inside) on
 * random non-zero inputs, odd and realistic shapes, outputs poisoned with NaN first; syncCheck reports a fault at the
 * launch that caused it.
 *
 * <p>Tolerances: patchify, unpatchify, embedding are copies (bit-exact). The timestep embedding is computed in fp64 on
 * both sides (1 ulp). gatedResidual is one fma on the GPU and one rounding of the fp64 value on the CPU (bit-exact
 * but for a rare double rounding; checked to 1e-6 of the magnitude of h and g·a). RMSNorm: fp32 statistics and
 * products against fp64, rel 1e-5 of the magnitude of the summed terms |x·ρ·w·(1+scale)| + |shift| (so an output
 * near zero by cancellation is not held to a relative bound); rstd rel 1e-5. SwiGLU: fp32 expf, divide and multiply
 * (a few ulp), rel 1e-5.
 */
@Tag("gpu")
class CudaNetworkLayersTest extends GpuCpuPairTestBase {
    private static final float EPS = 1e-6f;

    private NetworkOps gpu;
    private NetworkOps cpu;

    @Override
    void opened() {
        gpu = new CudaNetworkOps(p.gpu);
        cpu = new CpuNetworkOps(p.cpu);
    }

    // ---------------------------------------------------------------- layout and embeddings

    @Test
    void patchifyAndUnpatchifyAreExactPermutations() {
        int[][] cases = {{2, 32, 16, 16, 1}, {3, 4, 6, 10, 2}, {1, 3, 5, 7, 1}, {2, 32, 16, 16, 2}};
        long seed = 1;
        for (int[] c : cases) {
            int b = c[0], ch = c[1], h = c[2], w = c[3], patch = c[4];
            int tokens = (h / patch) * (w / patch), features = ch * patch * patch;
            String what = "B" + b + " C" + ch + " " + h + "x" + w + " p" + patch;
            var x = p.upload("x", values(seed++, b * ch * h * w, -1f, 1f), b, ch, h, w);
            var tok = p.poisoned("tokens", DType.F32, b, tokens, features);
            gpu.patchify(x.gpu(), patch, tok.gpu());
            cpu.patchify(x.cpu(), patch, tok.cpu());
            assertBitEqual("patchify " + what, p.cpuValues(tok), p.gpuValues(tok));

            var t2 = p.upload("t", values(seed++, b * tokens * features, -1f, 1f), b, tokens, features);
            var img = p.poisoned("img", DType.F32, b, ch, h, w);
            gpu.unpatchify(t2.gpu(), patch, img.gpu());
            cpu.unpatchify(t2.cpu(), patch, img.cpu());
            assertBitEqual("unpatchify " + what, p.cpuValues(img), p.gpuValues(img));
        }
    }

    @Test
    void timestepEmbeddingMatchesWithinOneUlp() {
        float[] t = {0f, 0.25f, 1f, 1.5f, 2f, 999.5f, -0.3f};
        for (int dim : new int[] {256, 6, 2}) {
            for (float maxPeriod : new float[] {10_000f, 7.5f}) {
                var ts = p.upload("t", t, t.length);
                var out = p.poisoned("emb", DType.F32, t.length, dim);
                gpu.timestepEmbedding(ts.gpu(), maxPeriod, out.gpu());
                cpu.timestepEmbedding(ts.cpu(), maxPeriod, out.cpu());
                assertUlps("timestepEmbedding dim " + dim + " maxPeriod " + maxPeriod, p.cpuValues(out),
                        p.gpuValues(out), 1, 1e-30f);
            }
        }
    }

    @Test
    void embeddingCopiesRows() {
        int v = 1001, d = 1152;
        var table = p.upload("table", values(3, v * d, -1f, 1f), v, d);
        int[] idv = {0, 1000, 5, 5, 999, 17, 3};
        var ids = p.upload("ids", idv, idv.length);
        var out = p.poisoned("out", DType.F32, idv.length, d);
        gpu.embedding(table.gpu(), ids.gpu(), out.gpu());
        cpu.embedding(table.cpu(), ids.cpu(), out.cpu());
        assertBitEqual("embedding", p.cpuValues(out), p.gpuValues(out));
    }

    @Test
    void embeddingWritesNanRowsForBadIds() {
        var table = p.upload("table", values(4, 5 * 37, -1f, 1f), 5, 37);
        var ids = p.upload("ids", new int[] {1, 5, -1}, 3);
        var out = p.poisoned("out", DType.F32, 3, 37);
        p.gpu.fill(out.gpu(), 0f);
        gpu.embedding(table.gpu(), ids.gpu(), out.gpu());
        float[] got = p.gpuValues(out);
        for (int i = 0; i < 37; i++) {
            assertTrue(!Float.isNaN(got[i]), "row of id 1 is finite");
            assertTrue(Float.isNaN(got[37 + i]) && Float.isNaN(got[74 + i]), "rows of ids 5 and -1 are NaN");
        }
    }

    // ---------------------------------------------------------------- RMSNorm and modulation

    /** One RMSNorm case: x [b, t, d] (or [b·t, d] without mod), K chunks of modulation or none. */
    private void checkRmsNorm(String what, int b, int t, int d, int chunks, int shift, int scale, boolean inPlace,
                              long seed) {
        boolean modulated = chunks > 0;
        int rows = b * t;
        float[] xv = values(seed, rows * d, -2f, 2f);
        float[] wv = values(seed + 1, d, 0.5f, 1.5f);
        float[] mv = modulated ? values(seed + 2, b * chunks * d, -1f, 1f) : null;
        int[] xShape = modulated ? new int[] {b, t, d} : new int[] {rows, d};
        var x = p.upload("x", xv, xShape);
        var w = p.upload("w", wv, d);
        var mod = modulated ? p.upload("mod", mv, b, chunks * d) : null;
        var out = inPlace ? x : p.poisoned("out", DType.F32, xShape);
        var rstd = p.poisoned("rstd", DType.F32, modulated ? new int[] {b, t} : new int[] {rows});
        gpu.rmsNormModulate(x.gpu(), w.gpu(), EPS, mod == null ? null : mod.gpu(), shift, scale, out.gpu(), rstd.gpu());
        cpu.rmsNormModulate(x.cpu(), w.cpu(), EPS, mod == null ? null : mod.cpu(), shift, scale, out.cpu(), rstd.cpu());

        float[] tol = new float[rows * d];
        for (int r = 0; r < rows; r++) {
            double ss = 0;
            for (int j = 0; j < d; j++) {
                ss += (double) xv[r * d + j] * xv[r * d + j];
            }
            double rho = 1 / Math.sqrt(ss / d + EPS);
            for (int j = 0; j < d; j++) {
                double n = xv[r * d + j] * rho * wv[j];
                double terms = modulated ? Math.abs(n * (1 + mv[(r / t) * chunks * d + scale * d + j]))
                        + Math.abs(mv[(r / t) * chunks * d + shift * d + j]) : Math.abs(n);
                tol[r * d + j] = (float) (1e-5 * terms + 1e-30);
            }
        }
        assertWithin("rmsNormModulate " + what, p.cpuValues(out), p.gpuValues(out), tol);
        float[] rc = p.cpuValues(rstd);
        float[] rtol = new float[rc.length];
        for (int i = 0; i < rc.length; i++) {
            rtol[i] = 1e-5f * Math.abs(rc[i]);
        }
        assertWithin("rmsNormModulate rstd " + what, rc, p.gpuValues(rstd), rtol);
    }

    @Test
    void rmsNormModulateMatchesCpu() {
        checkRmsNorm("block [2,37,1152] shift 0 scale 1", 2, 37, 1152, 6, 0, 1, false, 10);
        checkRmsNorm("block [2,37,1152] shift 3 scale 4", 2, 37, 1152, 6, 3, 4, false, 11);
        checkRmsNorm("final layer [2,256,1152]", 2, 256, 1152, 2, 0, 1, false, 12);
        checkRmsNorm("plain [5,1152]", 1, 5, 1152, 0, 0, 0, false, 13);
        checkRmsNorm("odd D [3,7,37] (scalar kernel)", 3, 7, 37, 6, 3, 4, false, 14);
        checkRmsNorm("D=2052 (beyond the register cache)", 1, 4, 2052, 0, 0, 0, false, 15);
        checkRmsNorm("D=1792 one row", 1, 1, 1792, 6, 5, 2, false, 16);
        checkRmsNorm("in place [2,37,1152]", 2, 37, 1152, 6, 0, 1, true, 17);
        checkRmsNorm("in place odd D", 2, 3, 37, 0, 0, 0, true, 18);
    }

    @Test
    void rmsNormRejectsBadShapes() {
        var x = p.upload("x", values(1, 2 * 3 * 8, -1f, 1f), 2, 3, 8);
        var w = p.upload("w", values(2, 7, -1f, 1f), 7);
        var out = p.poisoned("out", DType.F32, 2, 3, 8);
        assertThrows(ShapeException.class,
                () -> gpu.rmsNormModulate(x.gpu(), w.gpu(), EPS, null, 0, 0, out.gpu(), null));
        var w8 = p.upload("w8", values(2, 8, -1f, 1f), 8);
        var mod = p.upload("mod", values(3, 2 * 2 * 8, -1f, 1f), 2, 16);
        assertThrows(ShapeException.class, () -> gpu.rmsNormModulate(x.gpu(), w8.gpu(), EPS, mod.gpu(), 0, 2, out.gpu(),
                null));
    }

    @Test
    void gatedResidualMatchesCpu() {
        int[][] cases = {{2, 37, 1152, 2}, {3, 5, 37, 5}, {2, 256, 1152, 5}};
        long seed = 40;
        for (int[] c : cases) {
            for (boolean aliased : new boolean[] {false, true}) {
                int b = c[0], t = c[1], d = c[2], gate = c[3];
                float[] hv = values(seed++, b * t * d, -2f, 2f);
                float[] av = values(seed++, b * t * d, -2f, 2f);
                float[] mv = values(seed++, b * 6 * d, -1f, 1f);
                var h = p.upload("h", hv, b, t, d);
                var a = aliased ? h : p.upload("a", av, b, t, d);
                var mod = p.upload("mod", mv, b, 6 * d);
                gpu.gatedResidual(h.gpu(), a.gpu(), mod.gpu(), gate);
                cpu.gatedResidual(h.cpu(), a.cpu(), mod.cpu(), gate);
                float[] aUsed = aliased ? hv : av;
                float[] tol = new float[hv.length];
                for (int i = 0; i < tol.length; i++) {
                    float g = mv[(i / (t * d)) * 6 * d + gate * d + i % d];
                    tol[i] = 1e-6f * (Math.abs(hv[i]) + Math.abs(g * aUsed[i]));
                }
                assertWithin("gatedResidual [" + b + "," + t + "," + d + "] gate " + gate + (aliased ? " a=h" : ""),
                        p.cpuValues(h), p.gpuValues(h), tol);
            }
        }
    }

    // ---------------------------------------------------------------- SwiGLU

    @Test
    void swigluMatchesCpu() {
        int[][] shapes = {{2, 37, 6144}, {3, 74}, {1, 2}, {256, 6144}};
        long seed = 60;
        for (int[] shape : shapes) {
            int f = shape[shape.length - 1] / 2;
            int[] outShape = shape.clone();
            outShape[outShape.length - 1] = f;
            var gu = p.upload("gu", values(seed++, numel(shape), -10f, 10f), shape);
            var out = p.poisoned("out", DType.F32, outShape);
            gpu.swiglu(gu.gpu(), out.gpu());
            cpu.swiglu(gu.cpu(), out.cpu());
            float[] ref = p.cpuValues(out);
            float[] tol = new float[ref.length];
            for (int i = 0; i < ref.length; i++) {
                tol[i] = 1e-5f * Math.abs(ref[i]) + 1e-30f;
            }
            assertWithin("swiglu " + java.util.Arrays.toString(shape), ref, p.gpuValues(out), tol);
        }
    }

    @Test
    void swigluRejectsOddWidth() {
        var gu = p.upload("gu", values(1, 3 * 5, -1f, 1f), 3, 5);
        var out = p.poisoned("out", DType.F32, 3, 2);
        assertThrows(ShapeException.class, () -> gpu.swiglu(gu.gpu(), out.gpu()));
    }
}
