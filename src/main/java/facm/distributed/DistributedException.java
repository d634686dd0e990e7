package facm.distributed;

/** A failed rendezvous or collective: a peer that never came, died, or timed out. The message names the peer. */
public final class DistributedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public DistributedException(String message) {
        super(message);
    }

    public DistributedException(String message, Throwable cause) {
        super(message, cause);
    }
}
