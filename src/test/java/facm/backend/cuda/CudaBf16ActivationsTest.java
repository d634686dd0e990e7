package facm.backend.cuda;

import facm.backend.cpu.CpuNetworkOps;
import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static facm.backend.cuda.GpuCpuPair.assertUlps;
import static facm.backend.cuda.GpuCpuPair.assertWithin;
import static facm.backend.cuda.GpuCpuPair.bf16Values;
import static facm.backend.cuda.GpuCpuPair.values;

/**
 * The bf16-activation forms of the forward kernels (rmsnorm.cu _bf16out, adaln.cu _bf16a, swiglu.cu _bf16, rope.cu
 * _bf16) and the cuBLASLt bias epilogue against the CPU reference (which widens the bf16 inputs, computes in fp64 and
 * rounds the f32 result to bf16), on random non-zero inputs, odd shapes (rows 7, D 40) and XL/1-like ones (B2·T256,
 * D 1152, F 3072, 16 heads of 72), outputs poisoned with NaN first.
 *
 * <p>Tolerances: a bf16 output may land one bf16 step away where the fp32 value (GPU) and the fp64 value (CPU) sit on
 * either side of a rounding boundary: 2^-7 of the value (one step is 2^-8 to 2^-7 of it) plus an absolute 1e-4 for
 * results that are small by cancellation. gatedResidual with a bf16 branch is the same fma on exactly widened values
 * as the f32 form (1 ulp, 1e-6 floor). The bias epilogue: fp32 accumulation in another order than the CPU's, then
 * the bf16 rounding: 2^-7 of the value plus 1e-3 (|values| up to ~20 at K = 1152).
 */
@Tag("gpu")
class CudaBf16ActivationsTest extends GpuCpuPairTestBase {
    private static final float BF16_STEP = 1f / 128f;

    private NetworkOps gpu;
    private NetworkOps cpu;

    @Override
    void opened() {
        gpu = new CudaNetworkOps(p.gpu);
        cpu = new CpuNetworkOps(p.cpu);
    }

    private static float[] bf16Tolerance(float[] reference, float abs) {
        float[] tol = new float[reference.length];
        for (int i = 0; i < tol.length; i++) {
            tol[i] = BF16_STEP * Math.abs(reference[i]) + abs;
        }
        return tol;
    }

    private void assertBf16Close(String what, GpuCpuPair.Both out, float abs) {
        float[] c = p.cpu.download(out.cpu());
        float[] g = p.gpu.download(out.gpu());
        assertWithin(what, c, g, bf16Tolerance(c, abs));
    }

    /** rmsNormModulate f32 x → bf16 out: 6 bytes moved per element instead of 8. */
    @ParameterizedTest(name = "B{0} T{1} D{2} mod {3}")
    @CsvSource({"1, 7, 40, true", "1, 7, 40, false", "2, 3, 38, true", "2, 256, 1152, true", "1, 5, 2052, true"})
    void rmsNormWritesBf16(int b, int t, int d, boolean withMod) {
        GpuCpuPair.Both x = p.upload("x", values(1, b * t * d, -2f, 2f), b, t, d);
        GpuCpuPair.Both w = p.upload("w", values(2, d, 0.5f, 1.5f), d);
        GpuCpuPair.Both mod = withMod ? p.upload("mod", values(3, b * 6 * d, -0.5f, 0.5f), b, 6 * d) : null;
        GpuCpuPair.Both out = p.poisoned("out", DType.BF16, b, t, d);
        GpuCpuPair.Both rstd = p.poisoned("rstd", DType.F32, b * t);
        gpu.rmsNormModulate(x.gpu(), w.gpu(), 1e-6f, withMod ? mod.gpu() : null, 3, 4, out.gpu(), rstd.gpu());
        cpu.rmsNormModulate(x.cpu(), w.cpu(), 1e-6f, withMod ? mod.cpu() : null, 3, 4, out.cpu(), rstd.cpu());
        assertBf16Close("rmsNormModulate bf16 out", out, 1e-4f);
        float[] rc = p.cpu.download(rstd.cpu());
        float[] rg = p.gpu.download(rstd.gpu());
        float[] tol = new float[rc.length];
        for (int i = 0; i < tol.length; i++) {
            tol[i] = 1e-5f * Math.abs(rc[i]);
        }
        assertWithin("rmsNormModulate rstd", rc, rg, tol);
    }

    /** h f32 += gate ⊙ a with a bf16: 10 bytes per element instead of 12. */
    @ParameterizedTest(name = "B{0} T{1} D{2}")
    @CsvSource({"1, 7, 40", "2, 3, 39", "2, 256, 1152"})
    void gatedResidualTakesBf16Branch(int b, int t, int d) {
        float[] h0 = values(4, b * t * d, -2f, 2f);
        GpuCpuPair.Both h = p.upload("h", h0, b, t, d);
        GpuCpuPair.Both a = p.uploadBf16("a", bf16Values(5, b * t * d, -2f, 2f), b, t, d);
        GpuCpuPair.Both mod = p.upload("mod", values(6, b * 6 * d, -1f, 1f), b, 6 * d);
        gpu.gatedResidual(h.gpu(), a.gpu(), mod.gpu(), 5);
        cpu.gatedResidual(h.cpu(), a.cpu(), mod.cpu(), 5);
        assertUlps("gatedResidual bf16 a", p.cpu.download(h.cpu()), p.gpu.download(h.gpu()), 1, 1e-6f);
    }

    /** SiLU(g)·u of a bf16 gu into bf16 (6 bytes per output) or f32 out. */
    @ParameterizedTest(name = "rows {0} F {1} out {2}")
    @CsvSource({"7, 40, BF16", "7, 40, F32", "5, 37, BF16", "5, 37, F32", "512, 3072, BF16", "512, 3072, F32"})
    void swigluOfBf16(int rows, int f, DType outType) {
        GpuCpuPair.Both gu = p.uploadBf16("gu", bf16Values(7, rows * 2 * f, -4f, 4f), rows, 2 * f);
        GpuCpuPair.Both out = p.poisoned("out", outType, rows, f);
        gpu.swiglu(gu.gpu(), out.gpu());
        cpu.swiglu(gu.cpu(), out.cpu());
        if (outType == DType.BF16) {
            assertBf16Close("swiglu bf16 out", out, 1e-6f);
        } else {
            float[] c = p.cpu.download(out.cpu());
            float[] g = p.gpu.download(out.gpu());
            float[] tol = new float[c.length];
            for (int i = 0; i < tol.length; i++) {
                tol[i] = 1e-5f * Math.abs(c[i]) + 1e-7f;
            }
            assertWithin("swiglu f32 out of bf16 gu", c, g, tol);
        }
    }

    /** qk-norm + RoPE of a bf16 qkv into bf16 (or f32) heads; rstd f32. */
    @ParameterizedTest(name = "B{0} T{1} H{2} dh{3} heads {4} norm {5} rope {6}")
    @CsvSource({"1, 7, 2, 40, BF16, true, true", "1, 7, 2, 40, F32, true, true", "2, 5, 3, 72, BF16, false, true",
            "2, 5, 3, 64, BF16, true, false", "2, 256, 16, 72, BF16, true, true", "1, 64, 4, 128, BF16, true, true",
            "2, 256, 16, 72, F32, true, true"})
    void qkNormRopeOfBf16(int b, int t, int heads, int dh, DType headType, boolean norm, boolean rope) {
        int width = 3 * heads * dh;
        GpuCpuPair.Both qkv = p.uploadBf16("qkv", bf16Values(8, b * t * width, -2f, 2f), b, t, width);
        GpuCpuPair.Both qw = norm ? p.upload("qw", values(9, dh, 0.5f, 1.5f), dh) : null;
        GpuCpuPair.Both kw = norm ? p.upload("kw", values(10, dh, 0.5f, 1.5f), dh) : null;
        float[] angles = values(11, t * dh, -3f, 3f);
        float[] cos = new float[angles.length];
        float[] sin = new float[angles.length];
        for (int i = 0; i < angles.length; i++) {
            cos[i] = (float) Math.cos(angles[i]);
            sin[i] = (float) Math.sin(angles[i]);
        }
        GpuCpuPair.Both c = rope ? p.upload("cos", cos, t, dh) : null;
        GpuCpuPair.Both s = rope ? p.upload("sin", sin, t, dh) : null;
        GpuCpuPair.Both q = p.poisoned("q", headType, b, heads, t, dh);
        GpuCpuPair.Both k = p.poisoned("k", headType, b, heads, t, dh);
        GpuCpuPair.Both v = p.poisoned("v", headType, b, heads, t, dh);
        GpuCpuPair.Both rstd = norm ? p.poisoned("rstd", DType.F32, b, t, 2, heads) : null;
        gpu.qkNormRope(qkv.gpu(), heads, norm ? qw.gpu() : null, norm ? kw.gpu() : null, 1e-6f,
                rope ? c.gpu() : null, rope ? s.gpu() : null, q.gpu(), k.gpu(), v.gpu(), norm ? rstd.gpu() : null);
        cpu.qkNormRope(qkv.cpu(), heads, norm ? qw.cpu() : null, norm ? kw.cpu() : null, 1e-6f,
                rope ? c.cpu() : null, rope ? s.cpu() : null, q.cpu(), k.cpu(), v.cpu(), norm ? rstd.cpu() : null);
        float abs = headType == DType.BF16 ? 1e-4f : 2e-5f;
        for (GpuCpuPair.Both out : new GpuCpuPair.Both[] {q, k, v}) {
            float[] cr = p.cpu.download(out.cpu());
            float[] gr = p.gpu.download(out.gpu());
            float[] tol = new float[cr.length];
            for (int i = 0; i < tol.length; i++) {
                tol[i] = (headType == DType.BF16 ? BF16_STEP : 1e-5f) * Math.abs(cr[i]) + abs;
            }
            assertWithin("qkNormRope " + out.cpu().name() + " " + headType, cr, gr, tol);
        }
    }

    /** x·Wᵀ + bias with the bias fused into cuBLASLt's epilogue, against the CPU reference and the unfused GPU path. */
    @ParameterizedTest(name = "rows {0} in {1} out {2} -> {3}")
    @CsvSource({"7, 40, 24, BF16", "7, 40, 24, F32", "33, 70, 17, BF16", "512, 1152, 3456, BF16",
            "512, 1152, 1152, F32", "512, 1152, 6912, F32"})
    void biasEpilogueMatchesProductPlusBias(int rows, int in, int outF, DType outType) {
        GpuCpuPair.Both x = p.uploadBf16("x", bf16Values(12, rows * in, -1f, 1f), rows, in);
        GpuCpuPair.Both w = p.uploadBf16("w", bf16Values(13, outF * in, -1f, 1f), outF, in);
        float[] biasValues = values(14, outF, -2f, 2f);
        GpuCpuPair.Both bias = outType == DType.BF16 ? p.uploadBf16("bias", toBf16(biasValues), outF)
                : p.upload("bias", biasValues, outF);
        GpuCpuPair.Both out = p.poisoned("out", outType, rows, outF);
        p.gpu.linear(x.gpu(), w.gpu(), bias.gpu(), out.gpu(), GemmPrecision.BF16);
        p.cpu.linear(x.cpu(), w.cpu(), bias.cpu(), out.cpu(), GemmPrecision.BF16);
        float[] c = p.cpu.download(out.cpu());
        float[] g = p.gpu.download(out.gpu());
        float[] tol = new float[c.length];
        for (int i = 0; i < tol.length; i++) {
            tol[i] = (outType == DType.BF16 ? BF16_STEP : 1e-5f) * Math.abs(c[i]) + 1e-3f;
        }
        assertWithin("linear with bias epilogue -> " + outType, c, g, tol);
        if (outType == DType.F32) {
            // The unfused GPU path: the same product, then the f32 bias add.
            try (Tensor unfused = p.gpu.empty("unfused", DType.F32, rows, outF)) {
                p.gpu.gemm(x.gpu(), false, w.gpu(), true, unfused, 1f, 0f, GemmPrecision.BF16);
                p.gpu.binary(facm.tensor.BinaryOp.ADD, unfused, bias.gpu(), unfused);
                float[] u = p.gpu.download(unfused);
                float[] tolU = new float[u.length];
                for (int i = 0; i < tolU.length; i++) {
                    tolU[i] = 1e-5f * Math.abs(u[i]) + 1e-4f;
                }
                assertWithin("bias epilogue vs gemm + add on the GPU", u, g, tolU);
            }
        }
    }

    private static short[] toBf16(float[] v) {
        short[] bits = new short[v.length];
        for (int i = 0; i < v.length; i++) {
            bits[i] = Bf16.fromFloat(v[i]);
        }
        return bits;
    }
}
