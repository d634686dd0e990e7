package facm.checkpoint;

/**
 * A checkpoint file that cannot be used: corrupt, truncated, unsafe, or not what the caller expects. The message is
 * one line that names the file and, where it helps, the byte offset and the tensor key. It is an
 * {@link IllegalArgumentException} because the file is the caller's input, so the command line prints it as is.
 */
public final class CheckpointException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
