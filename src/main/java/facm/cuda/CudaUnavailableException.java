package facm.cuda;

/** The GPU was asked for but cannot be used here: no driver, no device, or no kernels in the jar. One line says why. */
public final class CudaUnavailableException extends CudaException {
    private static final long serialVersionUID = 1L;

    public CudaUnavailableException(String message) {
        super(message);
    }
}
