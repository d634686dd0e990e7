package facm.cuda;

/** A CUDA driver call failed. The message names the call (with its context) and the CUDA error name. */
public class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int code;

    public CudaException(String call, int code) {
        super(call + " failed: " + Cuda.errorName(code));
        this.code = code;
    }

    public CudaException(String message) {
        super(message);
        this.code = -1;
    }

    /** The CUresult code, or -1 when the error did not come from a driver call. */
    public int code() {
        return code;
    }
}
