package facm.cuda;

import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

import java.util.ArrayDeque;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Caching device allocator. Sizes are rounded to a size class (512 B steps up to 1 MiB, 2 MiB steps above), freed
 * blocks go to a per-class free list and are handed out again without a driver call. When {@code cuMemAlloc} runs out,
 * the cache is returned to the driver and the allocation retried once; if it still fails the error states what was
 * asked and what the arena and the device hold. All reuse is stream-ordered on the device's main stream, which is
 * where every backend op runs (see {@link DeviceBuffer}).
 */
public final class DeviceArena implements AutoCloseable {
    private static final long SMALL_STEP = 512;
    private static final long LARGE_STEP = 2L << 20;
    private static final long SMALL_LIMIT = 1L << 20;

    private final CudaDevice device;
    private final TreeMap<Long, ArrayDeque<DevicePointer>> free = new TreeMap<>();
    private long inUse;
    private long cached;
    private long peak;
    private int blocksInUse;
    private int blocksCached;
    private boolean closed;

    DeviceArena(CudaDevice device) {
        this.device = device;
    }

    static long sizeClass(long bytes) {
        long b = Math.max(bytes, 1);
        long step = b <= SMALL_LIMIT ? SMALL_STEP : LARGE_STEP;
        return (b + step - 1) / step * step;
    }

    /** A buffer of at least {@code bytes}; {@code what} names it in errors and reports. */
    public synchronized DeviceBuffer allocate(long bytes, String what) {
        if (closed) {
            throw new IllegalStateException("arena of " + device + " is closed");
        }
        if (bytes < 0) {
            throw new IllegalArgumentException("negative allocation (" + bytes + " bytes) for '" + what + "'");
        }
        long block = sizeClass(bytes);
        ArrayDeque<DevicePointer> list = free.get(block);
        DevicePointer p;
        if (list != null && !list.isEmpty()) {
            p = list.pop();
            cached -= block;
            blocksCached--;
        } else {
            p = driverAlloc(block, bytes, what);
        }
        inUse += block;
        blocksInUse++;
        peak = Math.max(peak, inUse);
        return new DeviceBuffer(this, p, bytes, block, what);
    }

    private DevicePointer driverAlloc(long block, long bytes, String what) {
        device.makeCurrent();
        DevicePointer p = new DevicePointer();
        int r = JCudaDriver.cuMemAlloc(p, block);
        if (r == CUresult.CUDA_ERROR_OUT_OF_MEMORY && cached > 0) {
            device.synchronize();
            trimLocked();
            r = JCudaDriver.cuMemAlloc(p, block);
        }
        if (r == CUresult.CUDA_ERROR_OUT_OF_MEMORY) {
            long[] info = device.memoryInfo();
            throw new CudaException("out of GPU memory on " + device + ": asked " + human(bytes) + " for '" + what
                    + "'; this arena has " + human(inUse) + " in use, " + human(cached) + " cached; the device has "
                    + human(info[0]) + " free of " + human(info[1]) + " (CUDA_ERROR_OUT_OF_MEMORY)");
        }
        Cuda.check(r, "cuMemAlloc(" + human(bytes) + " for '" + what + "')");
        return p;
    }

    synchronized void release(DeviceBuffer b) {
        if (closed) {
            return;
        }
        inUse -= b.blockBytes();
        blocksInUse--;
        free.computeIfAbsent(b.blockBytes(), k -> new ArrayDeque<>()).push(b.pointer());
        cached += b.blockBytes();
        blocksCached++;
    }

    /** Returns every cached (free) block to the driver. Waits for the device first. */
    public synchronized void trim() {
        device.synchronize();
        trimLocked();
    }

    private void trimLocked() {
        device.makeCurrent();
        for (Map.Entry<Long, ArrayDeque<DevicePointer>> e : free.entrySet()) {
            for (DevicePointer p : e.getValue()) {
                Cuda.check(JCudaDriver.cuMemFree(p), "cuMemFree(" + human(e.getKey()) + ")");
            }
        }
        free.clear();
        cached = 0;
        blocksCached = 0;
    }

    public synchronized ArenaStats stats() {
        return new ArenaStats(inUse + cached, inUse, peak, cached, blocksInUse, blocksCached);
    }

    public synchronized void resetPeak() {
        peak = inUse;
    }

    /** One line for logs: what the arena holds on which device. */
    public String report() {
        return device + ": " + stats();
    }

    /** Frees cached blocks; blocks still in use are freed with the context. */
    @Override
    public synchronized void close() {
        if (!closed) {
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
