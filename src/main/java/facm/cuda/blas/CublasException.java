package facm.cuda.blas;

/**
 * A cuBLAS/cuBLASLt call returned a status other than CUBLAS_STATUS_SUCCESS. The message names the call, the status
 * (e.g. {@code CUBLAS_STATUS_NOT_SUPPORTED}) and what was being done, e.g. the GEMM's shape.
 */
public final class CublasException extends RuntimeException {
    private final int status;
    private final String call;

    public CublasException(String call, int status, String context) {
        super(call + " failed: " + CublasLtAbi.statusName(status) + " (" + status + ")"
                + (context == null || context.isEmpty() ? "" : " for " + context));
        this.status = status;
        this.call = call;
    }

    /** The raw cublasStatus_t value. */
    public int status() {
        return status;
    }

    /** The status's C name, e.g. {@code CUBLAS_STATUS_INVALID_VALUE}. */
    public String statusName() {
        return CublasLtAbi.statusName(status);
    }

    /** The C function that failed, e.g. {@code cublasLtMatmul}. */
    public String call() {
        return call;
    }
}
