package facm.cuda.blas;

import facm.tensor.ShapeException;

/**
 * One strided-batched matrix product on row-major matrices, in place on C:
 * {@code C[i] = alpha * op(A[i]) · op(B[i]) + beta * C[i]} for {@code i < batch}.
 *
 * <p>Stored shapes (row-major, densely packed, so each leading dimension is the stored row length): A is [m,k], or
 * [k,m] when {@code transA}; B is [k,n], or [n,k] when {@code transB}; C is [m,n]. Matrix {@code i} of an operand
 * starts {@code i * stride} elements after its base pointer; a stride of 0 broadcasts A or B over the batch (a shared
 * weight matrix). C's stride must keep the outputs apart when {@code batch > 1}. When {@code beta == 0} C is only
 * written, never read, so it may hold garbage (even NaN).
 *
 * @param strideA elements between consecutive A matrices; 0 broadcasts A
 * @param strideB elements between consecutive B matrices; 0 broadcasts B
 * @param strideC elements between consecutive C matrices; at least m*n when batch > 1
 */
public record RowMajorGemm(GemmKind kind, boolean transA, boolean transB, int m, int n, int k, int batch,
                           long strideA, long strideB, long strideC, float alpha, float beta) {

    public RowMajorGemm {
        if (kind == null) {
            throw new IllegalArgumentException("gemm kind is null");
        }
        if (m < 1 || n < 1 || k < 1 || batch < 1) {
            throw new ShapeException("gemm needs m, n, k and batch >= 1, got m=" + m + " n=" + n + " k=" + k
                    + " batch=" + batch);
        }
        if (strideA < 0 || strideB < 0 || strideC < 0) {
            throw new ShapeException("gemm batch strides must be >= 0, got A=" + strideA + " B=" + strideB + " C="
                    + strideC + " (m=" + m + " n=" + n + " k=" + k + " batch=" + batch + ")");
        }
        if (batch > 1 && strideC < (long) m * n) {
            throw new ShapeException("gemm output matrices overlap: strideC=" + strideC + " < m*n=" + (long) m * n
                    + " with batch=" + batch + " (C cannot be broadcast)");
        }
        if (!Float.isFinite(alpha) || !Float.isFinite(beta)) {
            throw new IllegalArgumentException("gemm alpha and beta must be finite, got alpha=" + alpha + " beta="
                    + beta);
        }
        // The extents must fit a long; cuBLASLt's own 64-bit offsets then cannot overflow either.
        span(batch, strideA, (long) m * k);
        span(batch, strideB, (long) k * n);
        span(batch, strideC, (long) m * n);
    }

    /** A single (batch 1) product C = op(A)·op(B), alpha 1, beta 0. */
    public static RowMajorGemm of(GemmKind kind, boolean transA, boolean transB, int m, int n, int k) {
        return batched(kind, transA, transB, m, n, k, 1);
    }

    /** {@code batch} products over densely stacked A, B and C (strides m*k, k*n, m*n), alpha 1, beta 0. */
    public static RowMajorGemm batched(GemmKind kind, boolean transA, boolean transB, int m, int n, int k,
                                       int batch) {
        return new RowMajorGemm(kind, transA, transB, m, n, k, batch, (long) m * k, (long) k * n, (long) m * n,
                1f, 0f);
    }

    public RowMajorGemm withScalars(float newAlpha, float newBeta) {
        return new RowMajorGemm(kind, transA, transB, m, n, k, batch, strideA, strideB, strideC, newAlpha, newBeta);
    }

    public RowMajorGemm withStrides(long newStrideA, long newStrideB, long newStrideC) {
        return new RowMajorGemm(kind, transA, transB, m, n, k, batch, newStrideA, newStrideB, newStrideC, alpha,
                beta);
    }

    /** Elements of A the product touches from its base pointer: the size its buffer must have at least. */
    public long aElements() {
        return span(batch, strideA, (long) m * k);
    }

    /** Elements of B the product touches from its base pointer. */
    public long bElements() {
        return span(batch, strideB, (long) k * n);
    }

    /** Elements of C the product touches (reads when beta != 0, always writes) from its base pointer. */
    public long cElements() {
        return span(batch, strideC, (long) m * n);
    }

    /** Multiply-adds times two: the usual FLOP count for throughput figures. */
    public double flops() {
        return 2.0 * m * n * k * batch;
    }

    /** One line for errors and logs, e.g. {@code BF16_F32OUT batch 3: C[37x53] = 1.0*A[29x37]^T*B[29x53] + 0.5*C ...}. */
    public String describe() {
        String a = transA ? "A[" + k + "x" + m + "]^T" : "A[" + m + "x" + k + "]";
        String b = transB ? "B[" + n + "x" + k + "]^T" : "B[" + k + "x" + n + "]";
        return kind + " batch " + batch + ": C[" + m + "x" + n + "] = " + alpha + "*" + a + "*" + b + " + " + beta
                + "*C, batch strides A=" + strideA + " B=" + strideB + " C=" + strideC + " elements";
    }

    private static long span(int batch, long stride, long matrixElements) {
        try {
            return batch == 1 ? matrixElements
                    : Math.addExact(Math.multiplyExact(batch - 1L, stride), matrixElements);
        } catch (ArithmeticException overflow) {
            throw new ShapeException("gemm extent overflows: batch=" + batch + " stride=" + stride + " matrix="
                    + matrixElements + " elements");
        }
    }
}
