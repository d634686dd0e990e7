package facm.tensor;

/**
 * How a matrix product computes. Inputs of dtype F32 use FP32 or TF32; inputs of dtype BF16 use BF16 (tensor cores,
 * fp32 accumulation). The CPU backend computes every mode in fp32 with fp64-free blocked loops, after rounding the
 * inputs to the mode's input precision, so that it can serve as the reference for each mode.
 */
public enum GemmPrecision {
    /** Full fp32 multiply-add. */
    FP32,
    /** fp32 storage, tensor cores with TF32 inputs, fp32 accumulation. */
    TF32,
    /** bf16 inputs, fp32 accumulation; output dtype F32 or BF16. */
    BF16
}
