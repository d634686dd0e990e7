package facm.backend.cuda;

import facm.cuda.Cuda;
import facm.cuda.CudaGraph;
import facm.cuda.CudaStream;
import facm.cuda.DeviceBuffer;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Copies between Java arrays and device buffers on the device's main stream, through a native staging block.
 *
 * <p>Why staging and the main stream: the main stream is non-blocking, so a plain {@code cuMemcpyHtoD} (legacy
 * stream) would not be ordered with the kernels queued on it, and the arena may hand a buffer out again while a
 * queued kernel still reads its previous contents. An async copy on the main stream is ordered with all of that.
 * The host side of an async copy must stay valid until it completes, which a Java array does not promise (the JVM
 * may move it), so the data goes through native memory from {@link Arena}, in chunks of at most
 * {@link #STAGING_BYTES}, and the stream is synchronized after each chunk. Pinned staging would be faster; uploads
 * and downloads are not on a hot path yet.
 */
final class HostTransfers {
    static final long STAGING_BYTES = 64L << 20;

    private HostTransfers() {
    }

    /** Copies all of {@code host} (e.g. {@code MemorySegment.ofArray(float[])}) to the start of {@code dst}. */
    /** Elements of a host array for {@code t}, or a clear error when one Java array cannot hold them. */
    static int hostLength(String op, CudaTensor t) {
        if (t.numel() > Integer.MAX_VALUE - 8) {
            throw new facm.tensor.ShapeException(op + ": " + t.describe() + " has " + t.numel()
                    + " elements, more than one Java array holds");
        }
        return (int) t.numel();
    }

    static void toDevice(CudaStream stream, MemorySegment host, DeviceBuffer dst, String what) {
        CudaGraph.requireNotCapturing("upload into " + what); // staged copies synchronize: never inside a capture
        long total = host.byteSize();
        requireFits(total, dst, what);
        if (total == 0) {
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment staging = arena.allocate(Math.min(total, STAGING_BYTES), 256);
            Pointer stagingPtr = Pointer.to(staging.asByteBuffer());
            for (long off = 0; off < total; off += STAGING_BYTES) {
                long n = Math.min(STAGING_BYTES, total - off);
                MemorySegment.copy(host, off, staging, 0, n);
                Cuda.check(JCudaDriver.cuMemcpyHtoDAsync(dst.ptr().withByteOffset(off), stagingPtr, n, stream.handle()),
                        "cuMemcpyHtoDAsync(" + n + " bytes at offset " + off + " into " + what + ")");
                stream.synchronize();
            }
        }
    }

    /** Copies the first {@code host.byteSize()} bytes of {@code src} into {@code host}, after all queued work. */
    static void toHost(CudaStream stream, DeviceBuffer src, MemorySegment host, String what) {
        CudaGraph.requireNotCapturing("download of " + what);
        long total = host.byteSize();
        requireFits(total, src, what);
        if (total == 0) {
            stream.synchronize();
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment staging = arena.allocate(Math.min(total, STAGING_BYTES), 256);
            Pointer stagingPtr = Pointer.to(staging.asByteBuffer());
            for (long off = 0; off < total; off += STAGING_BYTES) {
                long n = Math.min(STAGING_BYTES, total - off);
                Cuda.check(JCudaDriver.cuMemcpyDtoHAsync(stagingPtr, src.ptr().withByteOffset(off), n, stream.handle()),
                        "cuMemcpyDtoHAsync(" + n + " bytes at offset " + off + " from " + what + ")");
                stream.synchronize();
                MemorySegment.copy(staging, 0, host, off, n);
            }
        }
    }

    private static void requireFits(long bytes, DeviceBuffer buffer, String what) {
        if (bytes > buffer.bytes()) {
            throw new IllegalArgumentException(what + ": " + bytes + " bytes do not fit device buffer '" + buffer.what()
                    + "' of " + buffer.bytes() + " bytes");
        }
    }
}
