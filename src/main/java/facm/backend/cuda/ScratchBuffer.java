package facm.backend.cuda;

import facm.cuda.DeviceArena;
import facm.cuda.DeviceBuffer;

/**
 * Device scratch memory that an op family keeps between calls: the per-segment partial sums of the deterministic
 * parameter-gradient reductions, attention's row dot products D, recomputed RMSNorm ρ. It grows to the largest size
 * asked for and is then reused, so after the first call of a shape no op allocates; a fixed address also keeps the
 * ops safe to capture in a CUDA graph. Growing replaces the buffer; the old one goes back to the arena, which is safe
 * because the kernels that used it are already queued on the device's main stream (stream-ordered reuse, see
 * {@link DeviceBuffer}). Like the stream it serves, one instance is for one thread at a time.
 */
final class ScratchBuffer implements AutoCloseable {
    /** Regions handed out by {@link #regions} start on 256-byte boundaries (vector loads, coalescing). */
    private static final long ALIGN = 256;

    private final DeviceArena arena;
    private final String what;
    private DeviceBuffer buffer;

    ScratchBuffer(DeviceArena arena, String what) {
        this.arena = arena;
        this.what = what;
    }

    /**
     * Device addresses of consecutive regions of the given sizes in bytes (a size of 0 gives address 0, the kernels'
     * nullptr), valid until the next call. {@code op} names the caller if the allocation fails.
     */
    long[] regions(String op, long... bytes) {
        long total = 0;
        for (long b : bytes) {
            if (b < 0) {
                throw new IllegalArgumentException(op + ": negative scratch size " + b);
            }
            total += (b + ALIGN - 1) / ALIGN * ALIGN;
        }
        long base = address(op, total);
        long[] out = new long[bytes.length];
        long offset = 0;
        for (int i = 0; i < bytes.length; i++) {
            out[i] = bytes[i] == 0 ? 0L : base + offset;
            offset += (bytes[i] + ALIGN - 1) / ALIGN * ALIGN;
        }
        return out;
    }

    private long address(String op, long bytes) {
        if (bytes == 0) {
            return 0L;
        }
        if (buffer == null || buffer.bytes() < bytes) {
            if (buffer != null) {
                buffer.close();
                buffer = null;
            }
            buffer = arena.allocate(bytes, what + " scratch (for " + op + ")");
        }
        return buffer.address();
    }

    /** Bytes held now (0 before the first use and after close). */
    long bytes() {
        return buffer == null ? 0 : buffer.bytes();
    }

    /** Returns the buffer to the arena; a later call allocates again. */
    @Override
    public void close() {
        if (buffer != null) {
            buffer.close();
            buffer = null;
        }
    }
}
