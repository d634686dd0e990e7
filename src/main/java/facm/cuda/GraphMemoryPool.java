package facm.cuda;

import java.util.ArrayDeque;
import java.util.TreeMap;

/**
 * A private pool of a {@link DeviceArena}, like PyTorch's graph mempool: while a thread has the pool active
 * ({@link DeviceArena#usePool}), its allocations come from the pool and every block it frees goes back to the pool,
 * so the blocks a captured CUDA graph reads and writes are never handed to anyone else while the graph can be
 * replayed. A warm-up run of the region inside the pool fills it; the capture then finds every block it asks for in
 * the pool and makes no driver call. {@link #close()} (done by the owning {@link CudaGraph}) gives the pool's free
 * blocks back to the arena's cache; blocks still held by a tensor at that point become ordinary arena blocks and
 * return to the cache when closed.
 *
 * <p>All fields are guarded by the arena's lock.
 */
public final class GraphMemoryPool implements AutoCloseable {
    private final DeviceArena arena;
    private final String name;
    final TreeMap<Long, ArrayDeque<DevicePointer>> free = new TreeMap<>();
    /** Bytes of blocks belonging to the pool (free in it or handed out from it). */
    long heldBytes;
    long freeBytes;
    int freeBlocks;
    boolean released;

    GraphMemoryPool(DeviceArena arena, String name) {
        this.arena = arena;
        this.name = name;
    }

    public String name() {
        return name;
    }

    public DeviceArena arena() {
        return arena;
    }

    /** Bytes the pool holds (free in it or handed out from it); 0 after close. */
    public long heldBytes() {
        synchronized (arena) {
            return heldBytes;
        }
    }

    /** Bytes free in the pool, ready for the next allocation made with the pool active. */
    public long freeBytes() {
        synchronized (arena) {
            return freeBytes;
        }
    }

    public boolean isReleased() {
        synchronized (arena) {
            return released;
        }
    }

    DevicePointer take(long block) {
        ArrayDeque<DevicePointer> list = free.get(block);
        if (list == null || list.isEmpty()) {
            return null;
        }
        freeBytes -= block;
        freeBlocks--;
        return list.pop();
    }

    void put(long block, DevicePointer p) {
        free.computeIfAbsent(block, k -> new ArrayDeque<>()).push(p);
        freeBytes += block;
        freeBlocks++;
    }

    /** Gives the free blocks back to the arena; later allocations cannot use the pool. Idempotent. */
    @Override
    public void close() {
        arena.releasePool(this);
    }

    @Override
    public String toString() {
        return "graph pool '" + name + "'";
    }
}
