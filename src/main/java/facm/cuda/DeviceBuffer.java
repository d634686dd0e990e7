package facm.cuda;

import jcuda.driver.CUdeviceptr;

/**
 * A block of device memory handed out by a {@link DeviceArena}. {@link #close()} gives it back to the arena's cache
 * (not to the driver). The block may be reused by the next allocation, so close a buffer only after the work that
 * reads it has been queued on the device's main stream (stream order then makes the reuse safe).
 */
public final class DeviceBuffer implements AutoCloseable {
    private final DeviceArena arena;
    private final DevicePointer pointer;
    private final long bytes;
    private final long blockBytes;
    private final GraphMemoryPool pool;
    private String what;
    private boolean released;

    DeviceBuffer(DeviceArena arena, DevicePointer pointer, long bytes, long blockBytes, String what,
                 GraphMemoryPool pool) {
        this.arena = arena;
        this.pool = pool;
        this.pointer = pointer;
        this.bytes = bytes;
        this.blockBytes = blockBytes;
        this.what = what;
    }

    /** The raw device address, for kernel arguments and FFM calls. */
    public long address() {
        if (released) {
            throw new IllegalStateException("device buffer '" + what + "' used after close()");
        }
        return pointer.address();
    }

    /** A JCuda pointer object for driver calls (cuMemcpy*). */
    public CUdeviceptr ptr() {
        address();
        return pointer;
    }

    /** The size asked for. */
    public long bytes() {
        return bytes;
    }

    long blockBytes() {
        return blockBytes;
    }

    /** The graph pool this block belongs to, or null for an ordinary arena block. */
    GraphMemoryPool pool() {
        return pool;
    }

    DevicePointer pointer() {
        return pointer;
    }

    public String what() {
        return what;
    }

    void rename(String newWhat) {
        this.what = newWhat;
    }

    public boolean isReleased() {
        return released;
    }

    @Override
    public void close() {
        if (!released) {
            released = true;
            arena.release(this);
        }
    }
}
