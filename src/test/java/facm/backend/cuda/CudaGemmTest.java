package facm.backend.cuda;

import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Shapes;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static facm.backend.cuda.GpuCpuPair.assertWithin;
import static facm.backend.cuda.GpuCpuPair.numel;
import static facm.backend.cuda.GpuCpuPair.values;

/**
 * Backend.gemm on cuBLASLt against the CPU reference: every transpose combination, batched, both broadcast forms,
 * alpha/beta with a live out, the k = 0 edge, for FP32, TF32 and BF16 (f32 and bf16 out).
 *
 * <p>Tolerance per element, with M = |alpha| · Σ_k |a_ik| |b_kj| (computed on the CPU): both sides accumulate in
 * fp32 in different orders, each within k · 2^-24 · M of the exact sum, so 2k · 2^-24 · M. TF32 adds the input
 * rounding: cuBLAS may truncate or round to nearest where the CPU rounds ties away, one tf32 ulp (2^-10) per input,
 * so 2 · 2^-10 · M more. A bf16 out adds one bf16 ulp (2^-7 relative). The fp32 epilogue alpha·acc + beta·c adds
 * 2^-22 · (|result| + |beta · c|).
 */
@Tag("gpu")
class CudaGemmTest extends GpuCpuPairTestBase {

    private GpuCpuPair.Both operand(String name, long seed, GemmPrecision precision, int... shape) {
        float[] v = values(seed, numel(shape), -1f, 1f);
        if (precision != GemmPrecision.BF16) {
            return p.upload(name, v, shape);
        }
        short[] bits = new short[v.length];
        for (int i = 0; i < v.length; i++) {
            bits[i] = Bf16.fromFloat(v[i]);
        }
        return p.uploadBf16(name, bits, shape);
    }

    /** |x| as F32 on the CPU (BF16 widened first). */
    private Tensor cpuAbs(Tensor x) {
        if (x.dtype() == DType.F32) {
            return p.cpu.unary(UnaryOp.ABS, x);
        }
        try (Tensor f = p.cpu.convert(x, DType.F32)) {
            return p.cpu.unary(UnaryOp.ABS, f);
        }
    }

    private void check(GemmPrecision precision, DType outType, int[] aShape, boolean transA, int[] bShape,
                       boolean transB, float alpha, float beta) {
        GpuCpuPair.Both a = operand("a", 101 + aShape.length, precision, aShape);
        GpuCpuPair.Both b = operand("b", 202 + bShape.length, precision, bShape);
        int m = transA ? aShape[aShape.length - 1] : aShape[aShape.length - 2];
        int k = transA ? aShape[aShape.length - 2] : aShape[aShape.length - 1];
        int n = transB ? bShape[bShape.length - 2] : bShape[bShape.length - 1];
        int batch = aShape.length == 3 ? aShape[0] : bShape.length == 3 ? bShape[0] : -1;
        int[] outShape = batch < 0 ? new int[] {m, n} : new int[] {batch, m, n};
        GpuCpuPair.Both out;
        float[] old = null;
        if (beta == 0f) {
            out = p.poisoned("out", outType, outShape); // NaN must not leak through beta = 0
        } else {
            old = values(303, numel(outShape), -2f, 2f);
            out = outType == DType.F32 ? p.upload("out", old, outShape) : bf16Out(old, outShape);
            old = p.cpu.download(out.cpu());
        }
        p.gpu.gemm(a.gpu(), transA, b.gpu(), transB, out.gpu(), alpha, beta, precision);
        p.cpu.gemm(a.cpu(), transA, b.cpu(), transB, out.cpu(), alpha, beta, precision);
        float[] expected = p.cpu.download(out.cpu());
        float[] magnitude;
        try (Tensor absA = cpuAbs(a.cpu()); Tensor absB = cpuAbs(b.cpu());
             Tensor mag = p.cpu.empty(DType.F32, outShape)) {
            p.cpu.gemm(absA, transA, absB, transB, mag, Math.abs(alpha), 0f, GemmPrecision.FP32);
            magnitude = p.cpu.download(mag);
        }
        double rel = 2.0 * k * 0x1p-24 + (precision == GemmPrecision.TF32 ? 2 * 0x1p-10 : 0);
        float[] tol = new float[expected.length];
        for (int i = 0; i < tol.length; i++) {
            double t = rel * magnitude[i] + 0x1p-22 * (Math.abs(expected[i]) + (old == null ? 0 : Math.abs(beta * old[i])));
            if (outType == DType.BF16) {
                t += 0x1p-7 * Math.abs(expected[i]);
            }
            tol[i] = (float) t + 1e-30f;
        }
        String what = "gemm " + precision + " " + Shapes.str(aShape) + (transA ? "ᵀ" : "") + " · " + Shapes.str(bShape)
                + (transB ? "ᵀ" : "") + " -> " + outType.lower() + Shapes.str(outShape) + " alpha " + alpha + " beta " + beta;
        assertWithin(what, expected, p.gpu.download(out.gpu()), tol);
    }

    private GpuCpuPair.Both bf16Out(float[] values, int[] shape) {
        short[] bits = new short[values.length];
        for (int i = 0; i < bits.length; i++) {
            bits[i] = Bf16.fromFloat(values[i]);
        }
        return p.uploadBf16("out", bits, shape);
    }

    private static int[] op(boolean trans, int rows, int cols) {
        return trans ? new int[] {cols, rows} : new int[] {rows, cols};
    }

    @Test
    void everyTransposeAndPrecision2d() {
        int m = 37;
        int k = 129;
        int n = 65;
        for (GemmPrecision precision : GemmPrecision.values()) {
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    check(precision, DType.F32, op(ta, m, k), ta, op(tb, k, n), tb, 1f, 0f);
                }
            }
        }
        check(GemmPrecision.BF16, DType.BF16, op(false, m, k), false, op(true, k, n), true, 1f, 0f);
    }

    @Test
    void alphaAndBetaWithALiveOut() {
        check(GemmPrecision.FP32, DType.F32, new int[] {33, 70}, false, new int[] {70, 17}, false, 0.5f, -2f);
        check(GemmPrecision.TF32, DType.F32, new int[] {70, 33}, true, new int[] {17, 70}, true, -1.25f, 1f);
        check(GemmPrecision.BF16, DType.F32, new int[] {33, 70}, false, new int[] {17, 70}, true, 2f, 0.5f);
        check(GemmPrecision.BF16, DType.BF16, new int[] {33, 70}, false, new int[] {70, 17}, false, 1f, 1f);
    }

    @Test
    void batchedAndBroadcastOperands() {
        for (GemmPrecision precision : GemmPrecision.values()) {
            check(precision, DType.F32, new int[] {3, 37, 129}, false, new int[] {3, 129, 65}, false, 1f, 0f);
            check(precision, DType.F32, new int[] {3, 129, 37}, true, new int[] {3, 65, 129}, true, 1f, 0f);
            check(precision, DType.F32, new int[] {5, 64, 96}, false, new int[] {96, 48}, false, 1f, 0f);
            check(precision, DType.F32, new int[] {64, 96}, false, new int[] {5, 48, 96}, true, 1f, 0f);
        }
        check(GemmPrecision.BF16, DType.BF16, new int[] {4, 256, 64}, false, new int[] {4, 256, 64}, true, 0.125f, 0f);
    }

    @Test
    void realisticLinearLayers() {
        // y = x · Wᵀ for 256 tokens of width 1152 (LightningDiT-XL), and the 4x MLP expansion.
        check(GemmPrecision.BF16, DType.F32, new int[] {256, 1152}, false, new int[] {1152, 1152}, true, 1f, 0f);
        check(GemmPrecision.BF16, DType.BF16, new int[] {256, 1152}, false, new int[] {4608, 1152}, true, 1f, 0f);
        check(GemmPrecision.TF32, DType.F32, new int[] {256, 1152}, false, new int[] {1152, 1152}, true, 1f, 0f);
        check(GemmPrecision.FP32, DType.F32, new int[] {128, 1152}, false, new int[] {1152, 1152}, true, 1f, 0f);
    }

    @Test
    void emptyInnerDimensionScalesOut() {
        check(GemmPrecision.FP32, DType.F32, new int[] {4, 0}, false, new int[] {0, 3}, false, 1f, 0f);
        check(GemmPrecision.FP32, DType.F32, new int[] {4, 0}, false, new int[] {0, 3}, false, 1f, 0.5f);
        check(GemmPrecision.BF16, DType.BF16, new int[] {4, 0}, false, new int[] {3, 0}, true, 1f, -1f);
    }
}
