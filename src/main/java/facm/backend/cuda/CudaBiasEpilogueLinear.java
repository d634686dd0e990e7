package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;

/**
 * {@link CudaBackend#linear} for BF16 products with a bias: the bias fused into cuBLASLt's epilogue (one pass over
 * out, the bias added to the fp32 accumulator, out f32 or bf16 with a bias of out's dtype), or, for bf16 outputs
 * whose rows are not 16-byte multiples, an fp32 product and bias add rounded once.
 */
final class CudaBiasEpilogueLinear {
    private final CudaBackend backend;
    private final CudaGemm gemm;

    CudaBiasEpilogueLinear(CudaBackend backend, CudaGemm gemm) {
        this.backend = backend;
        this.gemm = gemm;
    }

    void linear(Tensor x, Tensor weight, Tensor bias, Tensor out, GemmPrecision precision) {
        CudaTensor cx = backend.require("linear", x), cw = backend.require("linear", weight);
        CudaTensor cb = backend.require("linear", bias);
        CudaTensor co = backend.require("linear", out);
        if (co.dtype() == DType.BF16 && !epilogueAligned(cx, cw, cb, co)) {
            // Seen on an H200: with rows of 70 and 17 bf16 elements the epilogue's result was 3 bf16 steps off
            // where product and bias nearly cancel (the product rounded to bf16 before the bias was added). The
            // fp32 product, the fp32 bias add and one rounding are the op's contract: keep it where the rows are
            // not 16-byte multiples (no real layer of ours has such rows; they all take the fused path).
            linearThroughF32(cx, cw, cb, co);
            return;
        }
        gemm.linearBias(cx, cw, cb, co, precision);
    }

    /** Whether every operand of a bias-epilogue product has 16-byte rows and a 16-byte aligned start. */
    private static boolean epilogueAligned(CudaTensor... ts) {
        for (CudaTensor t : ts) {
            long rowBytes = (long) t.dim(-1) * t.dtype().bytes();
            if (rowBytes % 16 != 0 || t.address() % 16 != 0) {
                return false;
            }
        }
        return true;
    }

    /** y = bf16(x·Wᵀ + b) through an fp32 product and an fp32 bias add, rounded once. */
    private void linearThroughF32(CudaTensor x, CudaTensor weight, CudaTensor bias, CudaTensor out) {
        try (Tensor f32 = backend.empty("linear f32 out", DType.F32, out.shape());
             Tensor b32 = bias.dtype() == DType.F32 ? null : backend.convert(bias, DType.F32)) {
            backend.unfusedLinear(x, weight, b32 == null ? bias : b32, f32, GemmPrecision.BF16);
            backend.convert(f32, out);
        }
    }
}
