package facm.cuda;

import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.JCudaDriver;

/** A timing event. Time a region with two events recorded on the same stream: {@code end.elapsedMillisSince(start)}. */
public final class CudaEvent implements AutoCloseable {
    private final CudaDevice device;
    final CUevent event = new CUevent(); // package-private: CudaStream.waitFor passes it to cuStreamWaitEvent
    private boolean closed;

    private CudaEvent(CudaDevice device) {
        this.device = device;
        device.makeCurrent();
        Cuda.check(JCudaDriver.cuEventCreate(event, CUevent_flags.CU_EVENT_DEFAULT), "cuEventCreate");
    }

    public static CudaEvent create(CudaDevice device) {
        return new CudaEvent(device);
    }

    public void record(CudaStream stream) {
        device.makeCurrent();
        Cuda.check(JCudaDriver.cuEventRecord(event, stream.handle()), "cuEventRecord");
    }

    public void synchronize() {
        CaptureState.refuse("cuEventSynchronize");
        device.makeCurrent();
        Cuda.check(JCudaDriver.cuEventSynchronize(event), "cuEventSynchronize");
    }

    /** Milliseconds between {@code start} and this event; waits for this event first. */
    public float elapsedMillisSince(CudaEvent start) {
        synchronize();
        float[] ms = new float[1];
        Cuda.check(JCudaDriver.cuEventElapsedTime(ms, start.event, event), "cuEventElapsedTime");
        return ms[0];
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            device.makeCurrent();
            Cuda.check(JCudaDriver.cuEventDestroy(event), "cuEventDestroy");
        }
    }
}
