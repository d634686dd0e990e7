package facm.cuda;

import jcuda.driver.CUresult;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Caching device allocator. Sizes are rounded to a size class (512 B steps up to 1 MiB, 2 MiB steps above), freed
 * blocks go to a per-class free list and are handed out again without a driver call. When {@code cuMemAlloc} runs out,
 * the cache is returned to the driver and the allocation retried once; if it still fails the error states what was
 * asked and what the arena and the device hold. All reuse is stream-ordered on the device's main stream, which is
 * where every backend op runs (see {@link DeviceBuffer}).
 *
 * <p><b>Graph pools.</b> While a thread has a {@link GraphMemoryPool} active ({@link #usePool}), its allocations are
 * served from that pool first, then from the cache (the block moves into the pool), then from the driver; every
 * block it frees, even one allocated before, goes into the pool. So the memory a captured CUDA graph touches stays
 * the graph's until it closes the pool. While the thread is capturing ({@link CudaGraph}) the driver is never
 * called: a block that neither the pool nor the cache has is refused as "not capturable". Other threads are not
 * affected by a pool.
 *
 * <p>Accounting: "in use" counts blocks handed out plus the free blocks held by pools (a graph may write them on
 * every replay), so the peak includes graph memory; "cached" is the free list anyone can take.
 */
public final class DeviceArena implements AutoCloseable {
    private static final long SMALL_STEP = 512;
    private static final long LARGE_STEP = 2L << 20;
    private static final long SMALL_LIMIT = 1L << 20;

    private final DriverMemory driver;
    private final String owner;
    private final TreeMap<Long, ArrayDeque<DevicePointer>> free = new TreeMap<>();
    private final List<GraphMemoryPool> pools = new ArrayList<>();
    private final ThreadLocal<GraphMemoryPool> activePool = new ThreadLocal<>();
    private long inUse;
    private long cached;
    private long peak;
    private long poolBytes;
    private int blocksInUse;
    private int blocksCached;
    private boolean closed;

    DeviceArena(CudaDevice device) {
        this(DriverMemory.of(device), device.toString());
    }

    DeviceArena(DriverMemory driver, String owner) {
        this.driver = driver;
        this.owner = owner;
    }

    static long sizeClass(long bytes) {
        long b = Math.max(bytes, 1);
        long step = b <= SMALL_LIMIT ? SMALL_STEP : LARGE_STEP;
        return (b + step - 1) / step * step;
    }

    /** A buffer of at least {@code bytes}; {@code what} names it in errors and reports. */
    public synchronized DeviceBuffer allocate(long bytes, String what) {
        if (closed) {
            throw new IllegalStateException("arena of " + owner + " is closed");
        }
        if (bytes < 0) {
            throw new IllegalArgumentException("negative allocation (" + bytes + " bytes) for '" + what + "'");
        }
        long block = sizeClass(bytes);
        GraphMemoryPool pool = activePool.get();
        if (pool != null) {
            return allocateInPool(pool, block, bytes, what);
        }
        if (CaptureState.active()) {
            throw new CudaException("not capturable: allocation of " + human(bytes) + " for '" + what
                    + "' outside a graph pool during the capture of CUDA graph '" + CaptureState.graphName() + "'");
        }
        DevicePointer p = takeCached(block);
        if (p == null) {
            p = driverAlloc(block, bytes, what);
        }
        handOut(block);
        return new DeviceBuffer(this, p, bytes, block, what, null);
    }

    private DeviceBuffer allocateInPool(GraphMemoryPool pool, long block, long bytes, String what) {
        if (pool.released) {
            throw new IllegalStateException("allocation of " + human(bytes) + " for '" + what + "': " + pool
                    + " was already closed");
        }
        DevicePointer p = pool.take(block);
        if (p == null) {
            p = takeCached(block);
            if (p == null) {
                if (CaptureState.active()) {
                    throw new CudaException("not capturable: allocation of " + human(bytes) + " for '" + what
                            + "' during the capture of CUDA graph '" + CaptureState.graphName() + "': neither " + pool
                            + " (" + human(pool.freeBytes) + " free) nor the arena's cache has a free "
                            + human(block) + " block, and the driver may not be called while capturing (run the "
                            + "region once in the pool before capturing it)");
                }
                p = driverAlloc(block, bytes, what);
            }
            handOut(block);
            pool.heldBytes += block;
            poolBytes += block;
        }
        return new DeviceBuffer(this, p, bytes, block, what, pool);
    }

    private DevicePointer takeCached(long block) {
        ArrayDeque<DevicePointer> list = free.get(block);
        if (list == null || list.isEmpty()) {
            return null;
        }
        cached -= block;
        blocksCached--;
        return list.pop();
    }

    private void handOut(long block) {
        inUse += block;
        blocksInUse++;
        peak = Math.max(peak, inUse);
    }

    private DevicePointer driverAlloc(long block, long bytes, String what) {
        DevicePointer p = new DevicePointer();
        int r = driver.allocate(p, block);
        if (r == CUresult.CUDA_ERROR_OUT_OF_MEMORY && cached > 0) {
            driver.synchronize();
            trimLocked();
            r = driver.allocate(p, block);
        }
        if (r == CUresult.CUDA_ERROR_OUT_OF_MEMORY) {
            long[] info = driver.memoryInfo();
            throw new CudaException("out of GPU memory on " + owner + ": asked " + human(bytes) + " for '" + what
                    + "'; this arena has " + human(inUse) + " in use (" + human(poolBytes) + " of it in graph pools), "
                    + human(cached) + " cached; the device has " + human(info[0]) + " free of " + human(info[1])
                    + " (CUDA_ERROR_OUT_OF_MEMORY)");
        }
        Cuda.check(r, "cuMemAlloc(" + human(bytes) + " for '" + what + "')");
        return p;
    }

    synchronized void release(DeviceBuffer b) {
        if (closed) {
            return;
        }
        long block = b.blockBytes();
        GraphMemoryPool pool = b.pool();
        if (pool != null && !pool.released) {
            pool.put(block, b.pointer()); // stays "in use": the graph may write it on every replay
            return;
        }
        GraphMemoryPool active = activePool.get();
        if (active != null && !active.released) {
            // Freed inside a pool region: the region (a graph being captured) may use this block, so the pool adopts it.
            active.put(block, b.pointer());
            active.heldBytes += block;
            poolBytes += block;
            return;
        }
        inUse -= block;
        blocksInUse--;
        free.computeIfAbsent(block, k -> new ArrayDeque<>()).push(b.pointer());
        cached += block;
        blocksCached++;
    }

    // ---------------------------------------------------------------- graph pools

    /** A new, empty private pool of this arena ({@code name} appears in errors and reports). */
    public synchronized GraphMemoryPool newPool(String name) {
        if (closed) {
            throw new IllegalStateException("arena of " + owner + " is closed");
        }
        GraphMemoryPool p = new GraphMemoryPool(this, name);
        pools.add(p);
        return p;
    }

    /** A region of the calling thread's allocations and frees; close it to end the region. */
    public interface PoolScope extends AutoCloseable {
        @Override
        void close();
    }

    /**
     * Makes {@code pool} the calling thread's pool until the returned scope is closed (use try-with-resources).
     * Pools do not nest.
     */
    public synchronized PoolScope usePool(GraphMemoryPool pool) {
        if (pool.arena() != this) {
            throw new IllegalArgumentException(pool + " belongs to another arena than " + owner + "'s");
        }
        if (pool.released) {
            throw new IllegalStateException(pool + " was already closed");
        }
        GraphMemoryPool current = activePool.get();
        if (current != null) {
            throw new IllegalStateException("cannot use " + pool + ": this thread is already using " + current);
        }
        activePool.set(pool);
        return () -> {
            synchronized (DeviceArena.this) {
                if (activePool.get() == pool) {
                    activePool.remove();
                }
            }
        };
    }

    /** The calling thread's active pool, or null. */
    public GraphMemoryPool activePool() {
        return activePool.get();
    }

    synchronized void releasePool(GraphMemoryPool pool) {
        if (pool.released) {
            return;
        }
        pool.released = true;
        pools.remove(pool);
        for (Map.Entry<Long, ArrayDeque<DevicePointer>> e : pool.free.entrySet()) {
            long block = e.getKey();
            for (DevicePointer p : e.getValue()) {
                inUse -= block;
                blocksInUse--;
                if (closed) {
                    continue;
                }
                free.computeIfAbsent(block, k -> new ArrayDeque<>()).push(p);
                cached += block;
                blocksCached++;
            }
        }
        pool.free.clear();
        poolBytes -= pool.heldBytes;
        pool.heldBytes = 0;
        pool.freeBytes = 0;
        pool.freeBlocks = 0;
    }

    // ---------------------------------------------------------------- cache and stats

    /** Returns every cached (free) block to the driver. Waits for the device first. */
    public synchronized void trim() {
        CaptureState.refuse("DeviceArena.trim (cuCtxSynchronize, cuMemFree)");
        driver.synchronize();
        trimLocked();
    }

    private void trimLocked() {
        for (Map.Entry<Long, ArrayDeque<DevicePointer>> e : free.entrySet()) {
            for (DevicePointer p : e.getValue()) {
                Cuda.check(driver.free(p), "cuMemFree(" + human(e.getKey()) + ")");
            }
        }
        free.clear();
        cached = 0;
        blocksCached = 0;
    }

    public synchronized ArenaStats stats() {
        return new ArenaStats(inUse + cached, inUse, peak, cached, blocksInUse, blocksCached, poolBytes);
    }

    public synchronized void resetPeak() {
        peak = inUse;
    }

    /** One line for logs: what the arena holds on which device. */
    public String report() {
        return owner + ": " + stats();
    }

    /** Frees cached blocks and the free blocks of open pools; blocks still in use are freed with the context. */
    @Override
    public synchronized void close() {
        if (!closed) {
            for (GraphMemoryPool p : List.copyOf(pools)) {
                for (Map.Entry<Long, ArrayDeque<DevicePointer>> e : p.free.entrySet()) {
                    for (DevicePointer ptr : e.getValue()) {
                        free.computeIfAbsent(e.getKey(), k -> new ArrayDeque<>()).push(ptr);
                    }
                }
                p.free.clear();
                p.released = true;
            }
            pools.clear();
            trimLocked();
            closed = true;
        }
    }

    public static String human(long bytes) {
        if (bytes < 1024) {
            return bytes + " B";
        }
        String[] units = {"KiB", "MiB", "GiB", "TiB"};
        double v = bytes;
        int u = -1;
        while (v >= 1024 && u < units.length - 1) {
            v /= 1024;
            u++;
        }
        return String.format(Locale.ROOT, "%.1f %s", v, units[u]);
    }
}
