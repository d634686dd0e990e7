package facm.autograd;

import facm.tensor.DType;

/**
 * The dtype policy of one pass: which op outputs are bf16. {@code inference} (the tape-less bf16-activation forms) and
 * {@code training} (bf16 GEMM operands written by their producers on a tape) are each null when the pass has none;
 * with both null every activation is f32.
 */
record PassDTypes(ForwardPass.Bf16Forms inference, ForwardPass.Bf16Training training) {

    /**
     * The dtype of an output that feeds only a linear (a norm's, swiglu's) made from an input of dtype {@code in}:
     * bf16 in a bf16-activation pass for a bf16 input (norms: always), or with {@link
     * ForwardPass.Bf16Training#operands}.
     */
    DType operandType(DType in) {
        if (training != null) {
            return training.operands() ? DType.BF16 : DType.F32;
        }
        return inference != null && in == DType.BF16 ? DType.BF16 : DType.F32;
    }

    /** The dtype of the q, k, v qkNormRope writes from a qkv of dtype {@code qkv}. */
    DType headType(DType qkv) {
        boolean bf16Heads = training != null ? training.attention()
                : inference != null && inference.attention() && qkv == DType.BF16;
        return bf16Heads ? DType.BF16 : DType.F32;
    }

    /** The dtype of an attention output from heads of dtype {@code heads}: bf16 (the projection's operand) or f32. */
    DType attentionOutType(DType heads) {
        return heads == DType.BF16 && (inference != null || training != null) ? DType.BF16 : DType.F32;
    }
}
