package facm.backend.cpu;

import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The CPU attention ops with BF16 operands (the reference of the bf16 tensor-core CUDA kernels): BF16 q, k, v (and
 * tangents, out, gradOut) must give exactly the F32 result of the same (bf16-representable) values, since the CPU
 * widens bf16 exactly and computes in float64 either way; a BF16 out is that F32 result rounded once. Mixed dtypes
 * are refused with the op's name.
 */
class CpuBf16AttentionTest {
    private static final CpuBackend CPU = new CpuBackend(2);
    private static final NetworkOps OPS = CPU.network();

    /** n bf16 bit patterns of values uniform in [lo, hi), none zero. */
    private static short[] bf16Values(long seed, int n, float lo, float hi) {
        SplittableRandom r = new SplittableRandom(seed);
        short[] bits = new short[n];
        for (int i = 0; i < n; i++) {
            short b;
            do {
                b = Bf16.fromFloat((float) (lo + (hi - lo) * r.nextDouble()));
            } while (Bf16.toFloat(b) == 0f);
            bits[i] = b;
        }
        return bits;
    }

    private static Tensor nan(DType dtype, int... shape) {
        Tensor t = CPU.empty("out", dtype, shape);
        CPU.fill(t, Float.NaN);
        return t;
    }

    private static float[] values(Tensor t) {
        return t.dtype() == DType.BF16 ? Bf16.toFloats(CPU.downloadBf16(t)) : CPU.download(t);
    }

    private static float[] rounded(float[] x) {
        float[] r = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            r[i] = Bf16.round(x[i]);
        }
        return r;
    }

    @Test
    void bf16InputsGiveTheF32ResultOfTheSameValues() {
        int b = 2, h = 3, t = 17, dh = 72;
        int n = b * h * t * dh;
        float scale = (float) (1 / Math.sqrt(dh));
        int[] head = {b, h, t, dh}, tok = {b, t, h * dh}, rows = {b, h, t};
        short[][] bits = new short[7][];
        Tensor[] f32 = new Tensor[7], bf16 = new Tensor[7];
        for (int i = 0; i < 7; i++) {
            bits[i] = bf16Values(40 + i, n, i < 2 ? -2 : -1, i < 2 ? 2 : 1);
            int[] shape = i == 6 ? tok : head;  // q, k, v, qDot, kDot, vDot [B,H,T,dh]; gradOut [B,T,H·dh]
            f32[i] = CPU.upload("x" + i, Bf16.toFloats(bits[i]), shape);
            bf16[i] = CPU.uploadBf16("x" + i, bits[i], shape);
        }

        // forward: F32 out, and BF16 out = the F32 result rounded once; lse identical
        Tensor outF = nan(DType.F32, tok), lseF = nan(DType.F32, rows);
        OPS.attention(f32[0], f32[1], f32[2], scale, outF, lseF);
        Tensor outB = nan(DType.F32, tok), lseB = nan(DType.F32, rows), outBB = nan(DType.BF16, tok);
        OPS.attention(bf16[0], bf16[1], bf16[2], scale, outB, lseB);
        OPS.attention(bf16[0], bf16[1], bf16[2], scale, outBB, null);
        assertArrayEquals(values(outF), values(outB), "attention out, bf16 vs f32 inputs");
        assertArrayEquals(values(lseF), values(lseB), "attention lse, bf16 vs f32 inputs");
        assertArrayEquals(rounded(values(outF)), values(outBB), "attention bf16 out = f32 out rounded");

        // backward: BF16 out and gradOut read as their (exact) float values
        Tensor outRounded = CPU.upload("outR", rounded(values(outF)), tok);
        Tensor outRoundedB = CPU.uploadBf16("outRB", CPU.downloadBf16(outBB), tok);
        Tensor[] gF = {nan(DType.F32, head), nan(DType.F32, head), nan(DType.F32, head)};
        Tensor[] gB = {nan(DType.F32, head), nan(DType.F32, head), nan(DType.F32, head)};
        OPS.attentionBackward(f32[0], f32[1], f32[2], scale, outRounded, lseF, f32[6], gF[0], gF[1], gF[2]);
        OPS.attentionBackward(bf16[0], bf16[1], bf16[2], scale, outRoundedB, lseB, bf16[6], gB[0], gB[1], gB[2]);
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(values(gF[i]), values(gB[i]), "attentionBackward grad " + "QKV".charAt(i));
        }

        // JVP: F32 and BF16 outputs
        Tensor jo = nan(DType.F32, tok), jod = nan(DType.F32, tok), jl = nan(DType.F32, rows);
        OPS.attentionJvp(f32[0], f32[1], f32[2], f32[3], f32[4], f32[5], scale, jo, jod, jl);
        Tensor bo = nan(DType.F32, tok), bod = nan(DType.F32, tok), bl = nan(DType.F32, rows);
        OPS.attentionJvp(bf16[0], bf16[1], bf16[2], bf16[3], bf16[4], bf16[5], scale, bo, bod, bl);
        assertArrayEquals(values(jo), values(bo), "attentionJvp out");
        assertArrayEquals(values(jod), values(bod), "attentionJvp outDot");
        assertArrayEquals(values(jl), values(bl), "attentionJvp lse");
        Tensor bbo = nan(DType.BF16, tok), bbod = nan(DType.BF16, tok);
        OPS.attentionJvp(bf16[0], bf16[1], bf16[2], null, bf16[4], null, scale, bbo, bbod, null);
        Tensor zo = nan(DType.F32, tok), zod = nan(DType.F32, tok);
        OPS.attentionJvp(f32[0], f32[1], f32[2], null, f32[4], null, scale, zo, zod, null);
        assertArrayEquals(rounded(values(zo)), values(bbo), "attentionJvp bf16 out (null tangents)");
        assertArrayEquals(rounded(values(zod)), values(bbod), "attentionJvp bf16 outDot (null tangents)");
    }

    @Test
    void mixedDTypesAreRefused() {
        int b = 1, h = 2, t = 5, dh = 16;
        int n = b * h * t * dh;
        Tensor qB = CPU.uploadBf16("q", bf16Values(1, n, -1, 1), b, h, t, dh);
        Tensor kF = CPU.upload("k", Bf16.toFloats(bf16Values(2, n, -1, 1)), b, h, t, dh);
        Tensor vB = CPU.uploadBf16("v", bf16Values(3, n, -1, 1), b, h, t, dh);
        Tensor qF = CPU.upload("qF", Bf16.toFloats(bf16Values(1, n, -1, 1)), b, h, t, dh);
        Tensor vF = CPU.upload("vF", Bf16.toFloats(bf16Values(3, n, -1, 1)), b, h, t, dh);
        assertThrows(ShapeException.class, () -> OPS.attention(qB, kF, vB, 0.25f, nan(DType.F32, b, t, h * dh),
                null), "q bf16 with k f32");
        assertThrows(ShapeException.class, () -> OPS.attention(qF, kF, vF, 0.25f, nan(DType.BF16, b, t, h * dh),
                null), "a bf16 out needs bf16 inputs");
        Tensor kB = CPU.uploadBf16("kB", bf16Values(2, n, -1, 1), b, h, t, dh);
        assertThrows(ShapeException.class, () -> OPS.attentionJvp(qB, kB, vB, qF, null, null, 0.25f,
                nan(DType.F32, b, t, h * dh), nan(DType.F32, b, t, h * dh), null), "an f32 tangent of bf16 q");
    }
}
