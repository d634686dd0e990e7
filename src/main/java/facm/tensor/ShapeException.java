package facm.tensor;

/** A tensor had the wrong shape or dtype for an op. The message names the op and the tensors. */
public final class ShapeException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public ShapeException(String message) {
        super(message);
    }
}
