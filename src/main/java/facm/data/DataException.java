package facm.data;

/**
 * A data set that cannot be opened or read: a missing folder or file, a bad header, a truncated file, labels that do
 * not match the images. The message is one line that names the file and what was expected, fit to show a user as is.
 */
public final class DataException extends RuntimeException {
    public DataException(String message) {
        super(message);
    }

    public DataException(String message, Throwable cause) {
        super(message, cause);
    }
}
