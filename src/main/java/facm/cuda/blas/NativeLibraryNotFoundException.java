package facm.cuda.blas;

/** A native library (or one of its symbols) could not be found; the message lists what was tried, on one line. */
public final class NativeLibraryNotFoundException extends RuntimeException {
    public NativeLibraryNotFoundException(String message) {
        super(message);
    }
}
