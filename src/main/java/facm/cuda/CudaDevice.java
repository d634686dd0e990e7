package facm.cuda;

import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.JCudaDriver;

import java.nio.charset.StandardCharsets;

/**
 * One GPU in use: its primary context, a main stream, a caching memory arena and the kernel library. The primary
 * context is shared by every thread; {@link #makeCurrent()} binds it to the calling thread and costs almost nothing
 * once bound, so every public op calls it first.
 */
public final class CudaDevice implements AutoCloseable {
    private final int ordinal;
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final String name;
    private final int computeCapability;
    private final long totalMemory;
    private final int multiprocessors;
    private final ThreadLocal<Boolean> bound = ThreadLocal.withInitial(() -> Boolean.FALSE);
    private final CudaStream stream;
    private final DeviceArena arena;
    private KernelLibrary kernels;
    private boolean closed;

    private CudaDevice(int ordinal) {
        Cuda.requireAvailable();
        if (ordinal < 0 || ordinal >= Cuda.deviceCount()) {
            throw new CudaUnavailableException("no GPU cuda:" + ordinal + ": this machine has " + Cuda.deviceCount()
                    + " (cuda:0.." + (Cuda.deviceCount() - 1) + ")");
        }
        this.ordinal = ordinal;
        Cuda.check(JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet(" + ordinal + ")");
        Cuda.check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain(cuda:" + ordinal + ")");
        makeCurrent();
        byte[] buf = new byte[256];
        Cuda.check(JCudaDriver.cuDeviceGetName(buf, buf.length, device), "cuDeviceGetName");
        int len = 0;
        while (len < buf.length && buf[len] != 0) {
            len++;
        }
        this.name = new String(buf, 0, len, StandardCharsets.US_ASCII);
        this.computeCapability = 10 * attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                + attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        this.multiprocessors = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        long[] mem = new long[1];
        Cuda.check(JCudaDriver.cuDeviceTotalMem(mem, device), "cuDeviceTotalMem");
        this.totalMemory = mem[0];
        this.stream = new CudaStream(this);
        this.arena = new DeviceArena(this);
    }

    /** Opens GPU {@code ordinal} (0-based); a clear {@link CudaUnavailableException} when there is none. */
    public static CudaDevice open(int ordinal) {
        return new CudaDevice(ordinal);
    }

    public int attribute(int cuDeviceAttribute) {
        int[] v = new int[1];
        Cuda.check(JCudaDriver.cuDeviceGetAttribute(v, cuDeviceAttribute, device), "cuDeviceGetAttribute(" + cuDeviceAttribute + ")");
        return v[0];
    }

    public void makeCurrent() {
        if (!bound.get()) {
            Cuda.check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent(cuda:" + ordinal + ")");
            bound.set(Boolean.TRUE);
        }
    }

    public int ordinal() {
        return ordinal;
    }

    public String name() {
        return name;
    }

    /** e.g. 90 for sm_90. */
    public int computeCapability() {
        return computeCapability;
    }

    public int multiprocessors() {
        return multiprocessors;
    }

    public long totalMemory() {
        return totalMemory;
    }

    /** Free and total device memory in bytes, from the driver (includes other processes' use). */
    public long[] memoryInfo() {
        makeCurrent();
        long[] free = new long[1];
        long[] total = new long[1];
        Cuda.check(JCudaDriver.cuMemGetInfo(free, total), "cuMemGetInfo");
        return new long[] {free[0], total[0]};
    }

    /** The stream every backend op of this device is queued on. */
    public CudaStream stream() {
        return stream;
    }

    public CudaStream newStream() {
        return new CudaStream(this);
    }

    public DeviceArena arena() {
        return arena;
    }

    /** The kernels of this jar, loaded into this device's context on first use. */
    public synchronized KernelLibrary kernels() {
        if (kernels == null) {
            kernels = KernelLibrary.load(this);
        }
        return kernels;
    }

    /** Waits for all work of this device's context. */
    public void synchronize() {
        CaptureState.refuse("cuCtxSynchronize(cuda:" + ordinal + ")");
        makeCurrent();
        Cuda.check(JCudaDriver.cuCtxSynchronize(), "cuCtxSynchronize(cuda:" + ordinal + ")");
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        makeCurrent();
        JCudaDriver.cuCtxSynchronize();
        if (kernels != null) {
            kernels.unload();
        }
        arena.close();
        stream.close();
        JCudaDriver.cuDevicePrimaryCtxRelease(device);
    }

    @Override
    public String toString() {
        return "cuda:" + ordinal + " " + name;
    }
}
