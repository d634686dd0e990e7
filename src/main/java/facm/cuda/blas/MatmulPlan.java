package facm.cuda.blas;

import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATMUL_DESC_POINTER_MODE;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATMUL_DESC_TRANSA;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATMUL_DESC_TRANSB;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET;
import static facm.cuda.blas.CublasLtAbi.CUBLASLT_POINTER_MODE_HOST;
import static facm.cuda.blas.CublasLtAbi.CUBLAS_OP_N;
import static facm.cuda.blas.CublasLtAbi.CUBLAS_OP_T;
import static facm.cuda.blas.CublasLtAbi.CUBLAS_STATUS_NOT_SUPPORTED;
import static facm.cuda.blas.CublasLtAbi.CUBLAS_STATUS_SUCCESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Everything cublasLtMatmul needs for one GEMM shape, built once and reused: the matmul descriptor, the matrix layouts
 * and the algorithm the heuristic chose. Names below are cuBLAS's column-major view, in which we compute the row-major
 * product: row-major C = op(A)·op(B) is, read column-major, Cᵀ = op(B)ᵀ·op(A)ᵀ, so cuBLAS's "A" is our B, its "B" is
 * our A, and its output is n×m with leading dimension n. No data moves: a row-major [r,c] matrix is a column-major
 * c×r matrix with leading dimension c.
 */
final class MatmulPlan {

    /**
     * What a plan depends on: the shape without alpha/beta, the epilogue (a fused bias or none), the pointers'
     * alignments (the bias's too: the heuristic reads it) and the workspace limit.
     */
    record Key(GemmKind kind, boolean transA, boolean transB, int m, int n, int k, int batch, long strideA,
               long strideB, long strideC, int alignA, int alignB, int alignC, long workspaceBytes, boolean bias,
               int alignBias) {

        static Key of(RowMajorGemm g, long a, long b, long c, long workspaceBytes) {
            return of(g, a, b, c, 0L, workspaceBytes);
        }

        /** {@code bias} 0: no epilogue; otherwise the device address of the bias vector (CUBLASLT_EPILOGUE_BIAS). */
        static Key of(RowMajorGemm g, long a, long b, long c, long bias, long workspaceBytes) {
            return new Key(g.kind(), g.transA(), g.transB(), g.m(), g.n(), g.k(), g.batch(), g.strideA(),
                    g.strideB(), g.strideC(), alignment(a), alignment(b), alignment(c), workspaceBytes, bias != 0,
                    bias == 0 ? 0 : alignment(bias));
        }

        /** The largest power of two up to 256 dividing the address: what the heuristic may assume about it. */
        static int alignment(long address) {
            long lowest = Long.lowestOneBit(address);
            return lowest == 0 || lowest > CublasLtAbi.MAX_POINTER_ALIGNMENT ? CublasLtAbi.MAX_POINTER_ALIGNMENT
                    : (int) lowest;
        }
    }

    final long desc;
    /** Layout of cuBLAS's "A": our B. */
    final long layoutOfB;
    /** Layout of cuBLAS's "B": our A. */
    final long layoutOfA;
    /** Layout of C, also used for D (the product is in place). */
    final long layoutOfC;
    /** The chosen cublasLtMatmulAlgo_t, 64 bytes. */
    final MemorySegment algo;
    final long workspaceNeeded;
    final float waves;

    private MatmulPlan(long desc, long layoutOfB, long layoutOfA, long layoutOfC, MemorySegment algo,
                       long workspaceNeeded, float waves) {
        this.desc = desc;
        this.layoutOfB = layoutOfB;
        this.layoutOfA = layoutOfA;
        this.layoutOfC = layoutOfC;
        this.algo = algo;
        this.workspaceNeeded = workspaceNeeded;
        this.waves = waves;
    }

    /**
     * Creates the descriptors and asks the heuristic for the best algorithm within the workspace limit.
     *
     * @param scratch   at least 16 bytes, 8-aligned, for out-parameters and attribute values
     * @param heuristic room for one cublasLtMatmulHeuristicResult_t
     * @param arena     owns the copied algo struct for the life of the handle
     */
    static MatmulPlan create(CublasLtFunctions f, long handle, Key key, String context, MemorySegment scratch,
                             MemorySegment heuristic, Arena arena) {
        return create(f, handle, key, 0L, context, scratch, heuristic, arena);
    }

    /**
     * As {@link #create(CublasLtFunctions, long, Key, String, MemorySegment, MemorySegment, Arena)}, with the bias
     * epilogue when {@code key.bias()}: {@code bias} is the vector the heuristic sees (its alignment matters); each
     * call sets its own bias pointer with {@link #setBias} before cublasLtMatmul, so one plan serves every layer of
     * the shape.
     */
    static MatmulPlan create(CublasLtFunctions f, long handle, Key key, long bias, String context,
                             MemorySegment scratch, MemorySegment heuristic, Arena arena) {
        GemmKind kind = key.kind();
        long desc = 0;
        long layoutOfB = 0;
        long layoutOfA = 0;
        long layoutOfC = 0;
        long preference = 0;
        try {
            desc = f.createMatmulDesc(scratch, kind.computeType, CublasLtAbi.CUDA_R_32F, context);
            f.setMatmulDescInt(desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, "CUBLASLT_MATMUL_DESC_POINTER_MODE",
                    CUBLASLT_POINTER_MODE_HOST, scratch, context);
            f.setMatmulDescInt(desc, CUBLASLT_MATMUL_DESC_TRANSA, "CUBLASLT_MATMUL_DESC_TRANSA",
                    key.transB() ? CUBLAS_OP_T : CUBLAS_OP_N, scratch, context);
            f.setMatmulDescInt(desc, CUBLASLT_MATMUL_DESC_TRANSB, "CUBLASLT_MATMUL_DESC_TRANSB",
                    key.transA() ? CUBLAS_OP_T : CUBLAS_OP_N, scratch, context);
            if (key.bias()) {
                // The bias runs along cuBLAS's rows of D (= our n output columns): one value per output feature,
                // of D's data type (the default CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE).
                f.setMatmulDescInt(desc, CublasLtAbi.CUBLASLT_MATMUL_DESC_EPILOGUE, "CUBLASLT_MATMUL_DESC_EPILOGUE",
                        CublasLtAbi.CUBLASLT_EPILOGUE_BIAS, scratch, context);
                setBias(f, desc, bias, scratch, context);
            }

            // Our B, stored [k,n] (or [n,k] if transB), is column-major n×k (or k×n).
            long bRows = key.transB() ? key.k() : key.n();
            long bCols = key.transB() ? key.n() : key.k();
            layoutOfB = layout(f, kind.inputDataType, bRows, bCols, key.batch(), key.strideB(), scratch, context);
            // Our A, stored [m,k] (or [k,m] if transA), is column-major k×m (or m×k).
            long aRows = key.transA() ? key.m() : key.k();
            long aCols = key.transA() ? key.k() : key.m();
            layoutOfA = layout(f, kind.inputDataType, aRows, aCols, key.batch(), key.strideA(), scratch, context);
            layoutOfC = layout(f, kind.outputDataType, key.n(), key.m(), key.batch(), key.strideC(), scratch,
                    context);

            preference = f.createPreference(scratch, context);
            scratch.set(JAVA_LONG, 0, key.workspaceBytes());
            f.setPreferenceAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                    "CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES", scratch, 8, context);
            if (kind.outputDataType == CublasLtAbi.CUDA_R_16BF) {
                // A split-K algorithm may add its partial products in the OUTPUT type, which for a bf16 output rounds
                // every partial sum to bf16. Allow only in-place and fp32 (compute-type) reductions, so the product
                // is rounded to bf16 once, as the CPU reference rounds it. (An error seen on an H200 with odd,
                // unaligned rows and the bias epilogue was not this: see CudaBiasEpilogueLinear.)
                setUint32(f, preference, CublasLtAbi.CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                        "CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK",
                        CublasLtAbi.CUBLASLT_REDUCTION_SCHEME_INPLACE_OR_COMPUTE_TYPE, scratch, context);
            }
            // cuBLAS's A is our b pointer and its B our a pointer; C and D are both c.
            setUint32(f, preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                    "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES", key.alignB(), scratch, context);
            setUint32(f, preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES", key.alignA(), scratch, context);
            setUint32(f, preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                    "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES", key.alignC(), scratch, context);
            setUint32(f, preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                    "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES", key.alignC(), scratch, context);

            heuristic.fill((byte) 0);
            int found = f.algoGetHeuristic(handle, desc, layoutOfB, layoutOfA, layoutOfC, layoutOfC, preference, 1,
                    heuristic, scratch, context);
            int state = heuristic.get(JAVA_INT, CublasLtAbi.HEURISTIC_STATE_OFFSET);
            if (found < 1) {
                throw new CublasException("cublasLtMatmulAlgoGetHeuristic (no algorithm returned)",
                        CUBLAS_STATUS_NOT_SUPPORTED, context);
            }
            if (state != CUBLAS_STATUS_SUCCESS) {
                throw new CublasException("cublasLtMatmulAlgoGetHeuristic (result state)", state, context);
            }
            long workspaceNeeded = heuristic.get(JAVA_LONG, CublasLtAbi.HEURISTIC_WORKSPACE_OFFSET);
            if (workspaceNeeded > key.workspaceBytes()) {
                throw new IllegalStateException("cuBLASLt chose an algorithm needing " + workspaceNeeded
                        + " bytes of workspace, more than the " + key.workspaceBytes() + " allowed, for " + context);
            }
            float waves = heuristic.get(JAVA_FLOAT, CublasLtAbi.HEURISTIC_WAVES_OFFSET);
            MemorySegment algo = arena.allocate(CublasLtAbi.ALGO_BYTES, 8);
            MemorySegment.copy(heuristic, 0, algo, 0, CublasLtAbi.ALGO_BYTES);
            return new MatmulPlan(desc, layoutOfB, layoutOfA, layoutOfC, algo, workspaceNeeded, waves);
        } catch (RuntimeException | Error failure) {
            // Release whatever was created before the failure; the failure itself is what the caller needs to see.
            destroyQuietly(f, desc, layoutOfB, layoutOfA, layoutOfC);
            throw failure;
        } finally {
            if (preference != 0) {
                f.destroyPreference(preference);
            }
        }
    }

    /** Points the bias epilogue of {@code desc} at {@code bias} (read by cublasLtMatmul when it enqueues). */
    static void setBias(CublasLtFunctions f, long desc, long bias, MemorySegment scratch, String context) {
        f.setMatmulDescLong(desc, CublasLtAbi.CUBLASLT_MATMUL_DESC_BIAS_POINTER, "CUBLASLT_MATMUL_DESC_BIAS_POINTER",
                bias, scratch, context);
    }

    /** Destroys the descriptor and layouts; returns the first failing status, or CUBLAS_STATUS_SUCCESS. */
    int destroy(CublasLtFunctions f) {
        return destroyQuietly(f, desc, layoutOfB, layoutOfA, layoutOfC);
    }

    private static long layout(CublasLtFunctions f, int dataType, long rows, long cols, int batch, long stride,
                               MemorySegment scratch, String context) {
        // Column-major with the leading dimension equal to the row count: the matrices are densely packed.
        long layout = f.createLayout(scratch, dataType, rows, cols, rows, context);
        if (batch > 1) {
            try {
                scratch.set(JAVA_INT, 0, batch);
                f.setLayoutAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, "CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT",
                        scratch, 4, context);
                scratch.set(JAVA_LONG, 0, stride);
                f.setLayoutAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                        "CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET", scratch, 8, context);
            } catch (RuntimeException failure) {
                f.destroyLayout(layout);
                throw failure;
            }
        }
        return layout;
    }

    /** Sets a uint32_t preference attribute (the alignments, the reduction-scheme mask). */
    private static void setUint32(CublasLtFunctions f, long preference, int attribute, String name, int value,
                                  MemorySegment scratch, String context) {
        scratch.set(JAVA_INT, 0, value);
        f.setPreferenceAttribute(preference, attribute, name, scratch, 4, context);
    }

    private static int destroyQuietly(CublasLtFunctions f, long desc, long... layouts) {
        int first = CUBLAS_STATUS_SUCCESS;
        for (long layout : layouts) {
            if (layout != 0) {
                int status = f.destroyLayout(layout);
                first = first == CUBLAS_STATUS_SUCCESS ? status : first;
            }
        }
        if (desc != 0) {
            int status = f.destroyMatmulDesc(desc);
            first = first == CUBLAS_STATUS_SUCCESS ? status : first;
        }
        return first;
    }
}
