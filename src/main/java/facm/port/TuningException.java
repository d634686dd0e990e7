package facm.port;

/** A tuning table or override file that cannot be used; the message is one line naming the file, line and problem. */
public final class TuningException extends IllegalArgumentException {
    public TuningException(String message) {
        super(message);
    }
}
