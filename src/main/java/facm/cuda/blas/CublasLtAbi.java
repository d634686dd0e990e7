package facm.cuda.blas;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;

/**
 * The numeric values and struct layouts of the cuBLAS/cuBLASLt C API that we bind by hand. There are no cuBLAS headers
 * on our build machines, so a wrong value here only shows up on a GPU: every value below was read from public headers.
 *
 * <p>Sources: {@code cublasLt.h} and {@code cublas_api.h} of CUDA 12.6 (as vendored in the public repository
 * zspace/system.cuda-12.6, include/), cross-checked against the bindgen output for the CUDA 13.0 headers in
 * coreylowman/cudarc (src/cublaslt/sys/mod.rs, items under feature "cuda-13000"): the values we use are identical in
 * 12.x and 13.0. {@code cudaDataType} values are from CUDA 13.0's {@code library_types.h} (/usr/local/cuda-13.0/include).
 */
final class CublasLtAbi {
    private CublasLtAbi() {
    }

    // cublasStatus_t (cublas_api.h)
    static final int CUBLAS_STATUS_SUCCESS = 0;
    static final int CUBLAS_STATUS_NOT_INITIALIZED = 1;
    static final int CUBLAS_STATUS_ALLOC_FAILED = 3;
    static final int CUBLAS_STATUS_INVALID_VALUE = 7;
    static final int CUBLAS_STATUS_ARCH_MISMATCH = 8;
    static final int CUBLAS_STATUS_MAPPING_ERROR = 11;
    static final int CUBLAS_STATUS_EXECUTION_FAILED = 13;
    static final int CUBLAS_STATUS_INTERNAL_ERROR = 14;
    static final int CUBLAS_STATUS_NOT_SUPPORTED = 15;
    static final int CUBLAS_STATUS_LICENSE_ERROR = 16;

    // cublasOperation_t (cublas_api.h)
    static final int CUBLAS_OP_N = 0;
    static final int CUBLAS_OP_T = 1;

    // cublasComputeType_t (cublas_api.h)
    static final int CUBLAS_COMPUTE_32F = 68;
    static final int CUBLAS_COMPUTE_32F_FAST_TF32 = 77;

    // cudaDataType_t (library_types.h)
    static final int CUDA_R_32F = 0;
    static final int CUDA_R_16BF = 14;

    // cublasLtPointerMode_t (cublasLt.h); CUBLASLT_POINTER_MODE_HOST == CUBLAS_POINTER_MODE_HOST == 0
    static final int CUBLASLT_POINTER_MODE_HOST = 0;

    // cublasLtMatmulDescAttributes_t (cublasLt.h); all int32_t-valued
    static final int CUBLASLT_MATMUL_DESC_POINTER_MODE = 2;
    static final int CUBLASLT_MATMUL_DESC_TRANSA = 3;
    static final int CUBLASLT_MATMUL_DESC_TRANSB = 4;
    /** int32_t, a cublasLtEpilogue_t. */
    static final int CUBLASLT_MATMUL_DESC_EPILOGUE = 7;
    /** const void* (8 bytes): the bias vector, of D's data type unless CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE says. */
    static final int CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8;

    // cublasLtEpilogue_t (cublasLt.h). BIAS: D = alpha·A·B + beta·C + bias broadcast along D's columns (bias length =
    // D's row count, packed), added in the compute type before the conversion to D's type.
    static final int CUBLASLT_EPILOGUE_DEFAULT = 1;
    static final int CUBLASLT_EPILOGUE_BIAS = 4;

    // cublasLtMatrixLayoutAttribute_t (cublasLt.h): BATCH_COUNT is int32_t, STRIDED_BATCH_OFFSET is int64_t
    static final int CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5;
    static final int CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6;

    // cublasLtMatmulPreferenceAttributes_t (cublasLt.h): MAX_WORKSPACE_BYTES is uint64_t, MIN_ALIGNMENT_* uint32_t
    static final int CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1;
    /** uint32_t mask of cublasLtReductionScheme_t: INPLACE 1, COMPUTE_TYPE 2, OUTPUT_TYPE 4. */
    static final int CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK = 3;
    static final int CUBLASLT_REDUCTION_SCHEME_INPLACE_OR_COMPUTE_TYPE = 1 | 2;
    static final int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5;
    static final int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6;
    static final int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7;
    static final int CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8;

    /** The largest alignment the heuristic asks about; its default assumption for every matrix pointer. */
    static final int MAX_POINTER_ALIGNMENT = 256;

    /** {@code cublasLtMatmulAlgo_t}: {@code struct { uint64_t data[8]; }}, 64 bytes. */
    static final long ALGO_BYTES = 64;

    /**
     * {@code cublasLtMatmulHeuristicResult_t}: {@code { cublasLtMatmulAlgo_t algo; size_t workspaceSize;
     * cublasStatus_t state; float wavesCount; int reserved[4]; }} = 64 + 8 + 4 + 4 + 16 = 96 bytes, 8-aligned.
     */
    static final StructLayout HEURISTIC_RESULT = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(8, ValueLayout.JAVA_LONG).withName("algo"),
            ValueLayout.JAVA_LONG.withName("workspaceSize"),
            ValueLayout.JAVA_INT.withName("state"),
            ValueLayout.JAVA_FLOAT.withName("wavesCount"),
            MemoryLayout.sequenceLayout(4, ValueLayout.JAVA_INT).withName("reserved"));
    static final long HEURISTIC_WORKSPACE_OFFSET =
            HEURISTIC_RESULT.byteOffset(MemoryLayout.PathElement.groupElement("workspaceSize"));
    static final long HEURISTIC_STATE_OFFSET =
            HEURISTIC_RESULT.byteOffset(MemoryLayout.PathElement.groupElement("state"));
    static final long HEURISTIC_WAVES_OFFSET =
            HEURISTIC_RESULT.byteOffset(MemoryLayout.PathElement.groupElement("wavesCount"));

    /** The name of a cuBLAS status code, as cublasGetStatusName would print it; unknown codes get their number. */
    static String statusName(int status) {
        return switch (status) {
            case CUBLAS_STATUS_SUCCESS -> "CUBLAS_STATUS_SUCCESS";
            case CUBLAS_STATUS_NOT_INITIALIZED -> "CUBLAS_STATUS_NOT_INITIALIZED";
            case CUBLAS_STATUS_ALLOC_FAILED -> "CUBLAS_STATUS_ALLOC_FAILED";
            case CUBLAS_STATUS_INVALID_VALUE -> "CUBLAS_STATUS_INVALID_VALUE";
            case CUBLAS_STATUS_ARCH_MISMATCH -> "CUBLAS_STATUS_ARCH_MISMATCH";
            case CUBLAS_STATUS_MAPPING_ERROR -> "CUBLAS_STATUS_MAPPING_ERROR";
            case CUBLAS_STATUS_EXECUTION_FAILED -> "CUBLAS_STATUS_EXECUTION_FAILED";
            case CUBLAS_STATUS_INTERNAL_ERROR -> "CUBLAS_STATUS_INTERNAL_ERROR";
            case CUBLAS_STATUS_NOT_SUPPORTED -> "CUBLAS_STATUS_NOT_SUPPORTED";
            case CUBLAS_STATUS_LICENSE_ERROR -> "CUBLAS_STATUS_LICENSE_ERROR";
            default -> "CUBLAS_STATUS_" + status;
        };
    }
}
