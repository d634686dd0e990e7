package facm.cuda;

import jcuda.driver.JCudaDriver;

/**
 * The driver calls a {@link DeviceArena} makes: allocating and freeing blocks, waiting for the device, asking what
 * memory is free. The arena's bookkeeping (size classes, the cache, graph pools) is tested on machines without a GPU
 * through a stand-in for this interface; on a GPU it is {@link #of(CudaDevice)}.
 */
interface DriverMemory {
    /** cuMemAlloc into {@code p}; returns the CUresult. */
    int allocate(DevicePointer p, long bytes);

    /** cuMemFree; returns the CUresult. */
    int free(DevicePointer p);

    /** Waits for all queued work (before freeing blocks that queued work may still use). */
    void synchronize();

    /** {free, total} bytes of the device. */
    long[] memoryInfo();

    static DriverMemory of(CudaDevice device) {
        return new DriverMemory() {
            @Override
            public int allocate(DevicePointer p, long bytes) {
                device.makeCurrent();
                return JCudaDriver.cuMemAlloc(p, bytes);
            }

            @Override
            public int free(DevicePointer p) {
                device.makeCurrent();
                return JCudaDriver.cuMemFree(p);
            }

            @Override
            public void synchronize() {
                device.synchronize();
            }

            @Override
            public long[] memoryInfo() {
                return device.memoryInfo();
            }

            @Override
            public String toString() {
                return device.toString();
            }
        };
    }
}
