package facm.cuda;

import jcuda.driver.CUresult;

/** A CUDA driver call failed. The message names the call (with its context) and the CUDA error name. */
public class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int code;

    public CudaException(String call, int code) {
        super((isCaptureError(code) ? "not capturable: " : "") + call + " failed: " + Cuda.errorName(code));
        this.code = code;
    }

    /** A message written in full by the caller, for the driver's {@code code}. */
    CudaException(int code, String message) {
        super(message);
        this.code = code;
    }

    public CudaException(String message) {
        super(message);
        this.code = -1;
    }

    /** True for the CUresults a driver call returns when it cannot be part of (or broke) a stream capture. */
    static boolean isCaptureError(int code) {
        return code == CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
                || code == CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
                || code == CUresult.CUDA_ERROR_STREAM_CAPTURE_IMPLICIT
                || code == CUresult.CUDA_ERROR_STREAM_CAPTURE_ISOLATION
                || code == CUresult.CUDA_ERROR_STREAM_CAPTURE_MERGE
                || code == CUresult.CUDA_ERROR_STREAM_CAPTURE_UNMATCHED
                || code == CUresult.CUDA_ERROR_STREAM_CAPTURE_UNJOINED
                || code == CUresult.CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD
                || code == CUresult.CUDA_ERROR_CAPTURED_EVENT;
    }

    /** The CUresult code, or -1 when the error did not come from a driver call. */
    public int code() {
        return code;
    }
}
