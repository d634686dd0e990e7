package facm.backend.cpu;

import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The reference of the bf16-activation forms: each is the f32 op on the exactly widened bf16 inputs, its outputs
 * rounded to bf16 (so a bf16 output equals Bf16.round of the f32 op's output, bit for bit), and every other dtype
 * combination is refused with the op and argument named.
 */
class CpuBf16ActivationsTest {
    private static CpuBackend be;
    private static NetworkOps net;

    @BeforeAll
    static void open() {
        be = new CpuBackend(2);
        net = be.network();
    }

    @AfterAll
    static void close() {
        be.close();
    }

    private static float[] values(long seed, int n, float lo, float hi) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (lo + (hi - lo) * r.nextDouble());
        }
        return v;
    }

    /** The values rounded to bf16, as an F32 tensor (the widened twin of a bf16 tensor). */
    private static Tensor roundedF32(String name, float[] v, int... shape) {
        float[] r = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            r[i] = Bf16.round(v[i]);
        }
        return be.upload(name, r, shape);
    }

    private static Tensor bf16(String name, float[] v, int... shape) {
        return be.convert(be.upload(name, v, shape), DType.BF16);
    }

    private static float[] rounded(float[] v) {
        float[] r = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            r[i] = Bf16.round(v[i]);
        }
        return r;
    }

    @Test
    void rmsNormBf16OutIsTheRoundedF32Result() {
        int b = 2, t = 7, d = 40;
        Tensor x = be.upload("x", values(1, b * t * d, -2, 2), b, t, d);
        Tensor w = be.upload("w", values(2, d, 0.5f, 1.5f), d);
        Tensor mod = be.upload("mod", values(3, b * 6 * d, -0.5f, 0.5f), b, 6 * d);
        Tensor ref = be.empty(DType.F32, b, t, d);
        Tensor rstdRef = be.empty(DType.F32, b * t);
        net.rmsNormModulate(x, w, 1e-6f, mod, 0, 1, ref, rstdRef);
        Tensor out = be.empty(DType.BF16, b, t, d);
        be.fill(out, Float.NaN);
        Tensor rstd = be.empty(DType.F32, b * t);
        net.rmsNormModulate(x, w, 1e-6f, mod, 0, 1, out, rstd);
        assertArrayEquals(rounded(be.download(ref)), be.download(out));
        assertArrayEquals(be.download(rstdRef), be.download(rstd));
        assertThrows(ShapeException.class, () -> net.rmsNormModulate(be.convert(x, DType.BF16), w, 1e-6f, mod, 0, 1,
                be.empty(DType.F32, b, t, d), null), "x must stay f32");
    }

    @Test
    void gatedResidualWidensABf16Branch() {
        int b = 2, t = 3, d = 38;
        float[] h0 = values(4, b * t * d, -2, 2);
        float[] a = values(5, b * t * d, -2, 2);
        Tensor mod = be.upload("mod", values(6, b * 6 * d, -1, 1), b, 6 * d);
        Tensor hRef = be.upload("h", h0, b, t, d);
        net.gatedResidual(hRef, roundedF32("a", a, b, t, d), mod, 2);
        Tensor h = be.upload("h", h0, b, t, d);
        net.gatedResidual(h, bf16("a", a, b, t, d), mod, 2);
        assertArrayEquals(be.download(hRef), be.download(h));
        Tensor hBf16 = bf16("h", h0, b, t, d);
        ShapeException e = assertThrows(ShapeException.class, () -> net.gatedResidual(hBf16, h, mod, 2));
        assertTrue(e.getMessage().contains("gatedResidual: h"), e.getMessage());
    }

    @Test
    void swigluOfBf16IsTheRoundedF32Result() {
        int rows = 7, f = 40;
        float[] gu = values(7, rows * 2 * f, -4, 4);
        Tensor ref = be.empty(DType.F32, rows, f);
        net.swiglu(roundedF32("gu", gu, rows, 2 * f), ref);
        Tensor outF32 = be.empty(DType.F32, rows, f);
        net.swiglu(bf16("gu", gu, rows, 2 * f), outF32);
        assertArrayEquals(be.download(ref), be.download(outF32));
        Tensor outBf16 = be.empty(DType.BF16, rows, f);
        net.swiglu(bf16("gu", gu, rows, 2 * f), outBf16);
        assertArrayEquals(rounded(be.download(ref)), be.download(outBf16));
        // f32 gu → bf16 out (a bf16 training pass's w3 operand): the f32 result rounded once as well.
        Tensor plainOut = be.empty(DType.F32, rows, f);
        Tensor outFromF32 = be.empty(DType.BF16, rows, f);
        net.swiglu(be.upload("gu", gu, rows, 2 * f), plainOut);
        net.swiglu(be.upload("gu", gu, rows, 2 * f), outFromF32);
        assertArrayEquals(rounded(be.download(plainOut)), be.download(outFromF32));
        assertThrows(ShapeException.class, () -> net.swiglu(bf16("gu", gu, rows, 2 * f),
                be.empty(DType.BF16, rows, f + 1)));
    }

    @Test
    void qkNormRopeOfBf16IsTheRoundedF32Result() {
        int b = 2, t = 5, heads = 3, dh = 8, width = 3 * heads * dh;
        float[] qkv = values(8, b * t * width, -2, 2);
        Tensor qw = be.upload("qw", values(9, dh, 0.5f, 1.5f), dh);
        Tensor kw = be.upload("kw", values(10, dh, 0.5f, 1.5f), dh);
        Tensor cos = be.upload("cos", values(11, t * dh, -1, 1), t, dh);
        Tensor sin = be.upload("sin", values(12, t * dh, -1, 1), t, dh);
        Tensor[] ref = heads(DType.F32, b, heads, t, dh);
        Tensor rstdRef = be.empty(DType.F32, b, t, 2, heads);
        net.qkNormRope(roundedF32("qkv", qkv, b, t, width), heads, qw, kw, 1e-6f, cos, sin, ref[0], ref[1], ref[2],
                rstdRef);
        Tensor[] f32 = heads(DType.F32, b, heads, t, dh);
        net.qkNormRope(bf16("qkv", qkv, b, t, width), heads, qw, kw, 1e-6f, cos, sin, f32[0], f32[1], f32[2], null);
        Tensor[] h16 = heads(DType.BF16, b, heads, t, dh);
        Tensor rstd = be.empty(DType.F32, b, t, 2, heads);
        net.qkNormRope(bf16("qkv", qkv, b, t, width), heads, qw, kw, 1e-6f, cos, sin, h16[0], h16[1], h16[2], rstd);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(be.download(ref[i]), be.download(f32[i]));
            assertArrayEquals(rounded(be.download(ref[i])), be.download(h16[i]));
        }
        assertArrayEquals(be.download(rstdRef), be.download(rstd));
        Tensor[] mixed = {h16[0], f32[1], h16[2]};
        ShapeException e = assertThrows(ShapeException.class, () -> net.qkNormRope(bf16("qkv", qkv, b, t, width),
                heads, qw, kw, 1e-6f, cos, sin, mixed[0], mixed[1], mixed[2], null));
        assertTrue(e.getMessage().contains("qkNormRope: k"), e.getMessage());
        // f32 qkv → bf16 heads (a bf16 training pass keeps the f32 qkv for the backward): the same rounded heads.
        Tensor[] plain = heads(DType.F32, b, heads, t, dh);
        Tensor[] fromF32 = heads(DType.BF16, b, heads, t, dh);
        net.qkNormRope(be.upload("qkv", qkv, b, t, width), heads, qw, kw, 1e-6f, cos, sin, plain[0], plain[1],
                plain[2], null);
        net.qkNormRope(be.upload("qkv", qkv, b, t, width), heads, qw, kw, 1e-6f, cos, sin, fromF32[0], fromF32[1],
                fromF32[2], null);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(rounded(be.download(plain[i])), be.download(fromF32[i]), "f32 qkv, bf16 head " + i);
        }
    }

    private static Tensor[] heads(DType dtype, int b, int heads, int t, int dh) {
        Tensor[] out = new Tensor[3];
        for (int i = 0; i < 3; i++) {
            out[i] = be.empty("qkv".substring(i, i + 1), dtype, b, heads, t, dh);
            be.fill(out[i], Float.NaN);
        }
        return out;
    }

    @Test
    void linearWithBiasIntoBf16IsTheRoundedF32Result() {
        int rows = 7, in = 40, outF = 24;
        Tensor x = bf16("x", values(13, rows * in, -1, 1), rows, in);
        Tensor w = bf16("w", values(14, outF * in, -1, 1), outF, in);
        float[] biasValues = values(15, outF, -2, 2);
        Tensor ref = be.empty(DType.F32, rows, outF);
        be.linear(x, w, roundedF32("bias", biasValues, outF), ref, GemmPrecision.BF16);
        Tensor out = be.empty(DType.BF16, rows, outF);
        be.linear(x, w, bf16("bias", biasValues, outF), out, GemmPrecision.BF16);
        assertArrayEquals(rounded(be.download(ref)), be.download(out));
        Tensor outF32Bias = be.empty(DType.BF16, rows, outF);
        be.linear(x, w, roundedF32("bias", biasValues, outF), outF32Bias, GemmPrecision.BF16);
        assertArrayEquals(be.download(out), be.download(outF32Bias));
        assertEquals(DType.BF16, out.dtype());
    }
}
