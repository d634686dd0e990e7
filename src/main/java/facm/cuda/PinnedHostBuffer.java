package facm.cuda;

import jcuda.Pointer;
import jcuda.driver.JCudaDriver;

import java.lang.foreign.MemorySegment;

/**
 * Page-locked host memory ({@code cuMemAllocHost}) for transfers that must be asynchronous: a copy from pinned
 * memory is a true DMA queued on the stream, so an upload, the work that reads it and a download can be queued back
 * to back and waited for once. Java arrays cannot be used for that (the JVM may move them, and pageable copies are
 * staged and synchronous). The host side must not be touched between queueing a copy and the stream reaching it.
 */
public final class PinnedHostBuffer implements AutoCloseable {
    private final CudaDevice device;
    private final String what;
    private final long bytes;
    private Pointer pointer;
    private MemorySegment segment;

    private PinnedHostBuffer(CudaDevice device, String what, long bytes, Pointer pointer) {
        this.device = device;
        this.what = what;
        this.bytes = bytes;
        this.pointer = pointer;
        this.segment = MemorySegment.ofBuffer(pointer.getByteBuffer(0, bytes));
    }

    /** {@code bytes} (> 0) of pinned memory, usable with {@code device}'s streams. */
    public static PinnedHostBuffer allocate(CudaDevice device, long bytes, String what) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("pinned host buffer '" + what + "' needs a positive size, got " + bytes);
        }
        if (bytes > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("pinned host buffer '" + what + "' of " + DeviceArena.human(bytes)
                    + " is larger than the 2 GiB one Java buffer view can address");
        }
        CaptureState.refuse("cuMemAllocHost(" + DeviceArena.human(bytes) + " for '" + what + "')");
        device.makeCurrent();
        Pointer p = new Pointer();
        Cuda.check(JCudaDriver.cuMemAllocHost(p, bytes), "cuMemAllocHost(" + DeviceArena.human(bytes) + " for '"
                + what + "')");
        return new PinnedHostBuffer(device, what, bytes, p);
    }

    public long bytes() {
        return bytes;
    }

    /** The host memory, for reading and writing values (native byte order). */
    public MemorySegment segment() {
        requireOpen();
        return segment;
    }

    /** Queues a copy of the first {@code n} bytes of this buffer to the start of {@code dst} on {@code stream}. */
    public void copyToDeviceAsync(DeviceBuffer dst, long n, CudaStream stream) {
        requireOpen();
        checkSize(n, dst, "to");
        device.makeCurrent();
        Cuda.check(JCudaDriver.cuMemcpyHtoDAsync(dst.ptr(), pointer, n, stream.handle()),
                "cuMemcpyHtoDAsync(" + n + " bytes from pinned '" + what + "' into '" + dst.what() + "')");
    }

    /** Queues a copy of the first {@code n} bytes of {@code src} into this buffer on {@code stream}. */
    public void copyFromDeviceAsync(DeviceBuffer src, long n, CudaStream stream) {
        requireOpen();
        checkSize(n, src, "from");
        device.makeCurrent();
        Cuda.check(JCudaDriver.cuMemcpyDtoHAsync(pointer, src.ptr(), n, stream.handle()),
                "cuMemcpyDtoHAsync(" + n + " bytes from '" + src.what() + "' into pinned '" + what + "')");
    }

    private void checkSize(long n, DeviceBuffer d, String direction) {
        if (n < 0 || n > bytes || n > d.bytes()) {
            throw new IllegalArgumentException("copy of " + n + " bytes " + direction + " device buffer '" + d.what()
                    + "' (" + d.bytes() + " bytes) through pinned '" + what + "' (" + bytes + " bytes)");
        }
    }

    private void requireOpen() {
        if (pointer == null) {
            throw new IllegalStateException("pinned host buffer '" + what + "' used after close()");
        }
    }

    /** Frees the memory; wait for queued copies that use it first. Idempotent. */
    @Override
    public void close() {
        if (pointer != null) {
            Pointer p = pointer;
            pointer = null;
            segment = null;
            device.makeCurrent();
            Cuda.check(JCudaDriver.cuMemFreeHost(p), "cuMemFreeHost('" + what + "')");
        }
    }
}
