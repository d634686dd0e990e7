package facm.cuda.blas;

import facm.tensor.DType;

/**
 * What a GEMM reads, computes in and writes. Every kind accumulates in fp32 and takes fp32 alpha/beta.
 *
 * <ul>
 *   <li>{@link #F32}: fp32 in and out, full fp32 multiply-add (CUBLAS_COMPUTE_32F).</li>
 *   <li>{@link #TF32}: fp32 in and out, tensor cores with inputs rounded to TF32 (CUBLAS_COMPUTE_32F_FAST_TF32).</li>
 *   <li>{@link #BF16_F32OUT}: bf16 A and B, fp32 C/D (CUBLAS_COMPUTE_32F).</li>
 *   <li>{@link #BF16_BF16OUT}: bf16 A, B, C and D; the fp32 result is rounded to bf16 once, on store.</li>
 * </ul>
 */
public enum GemmKind {
    F32(CublasLtAbi.CUBLAS_COMPUTE_32F, CublasLtAbi.CUDA_R_32F, CublasLtAbi.CUDA_R_32F, DType.F32, DType.F32),
    TF32(CublasLtAbi.CUBLAS_COMPUTE_32F_FAST_TF32, CublasLtAbi.CUDA_R_32F, CublasLtAbi.CUDA_R_32F, DType.F32, DType.F32),
    BF16_F32OUT(CublasLtAbi.CUBLAS_COMPUTE_32F, CublasLtAbi.CUDA_R_16BF, CublasLtAbi.CUDA_R_32F, DType.BF16, DType.F32),
    BF16_BF16OUT(CublasLtAbi.CUBLAS_COMPUTE_32F, CublasLtAbi.CUDA_R_16BF, CublasLtAbi.CUDA_R_16BF, DType.BF16,
            DType.BF16);

    final int computeType;
    final int inputDataType;
    final int outputDataType;
    private final DType inputDType;
    private final DType outputDType;

    GemmKind(int computeType, int inputDataType, int outputDataType, DType inputDType, DType outputDType) {
        this.computeType = computeType;
        this.inputDataType = inputDataType;
        this.outputDataType = outputDataType;
        this.inputDType = inputDType;
        this.outputDType = outputDType;
    }

    /** The dtype of A and B. */
    public DType inputDType() {
        return inputDType;
    }

    /** The dtype of C (read when beta != 0) and of the result, written in place of C. */
    public DType outputDType() {
        return outputDType;
    }

    public int inputElementBytes() {
        return inputDType.bytes();
    }

    public int outputElementBytes() {
        return outputDType.bytes();
    }
}
