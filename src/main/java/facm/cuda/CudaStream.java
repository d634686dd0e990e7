package facm.cuda;

import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

/** A CUDA stream of one device. Work on one stream runs in order; {@link #address()} is the native handle for FFM. */
public final class CudaStream implements AutoCloseable {
    private final CudaDevice device;
    private final AddressableStream handle;
    private boolean closed;

    private static final class AddressableStream extends CUstream {
        long address() {
            return getNativePointer();
        }
    }

    CudaStream(CudaDevice device) {
        this.device = device;
        this.handle = new AddressableStream();
        device.makeCurrent();
        Cuda.check(JCudaDriver.cuStreamCreate(handle, CUstream_flags.CU_STREAM_NON_BLOCKING),
                "cuStreamCreate(" + device + ")");
    }

    /** Work queued on this stream from now on waits until {@code event} (recorded on any stream) has happened. */
    public void waitFor(CudaEvent event) {
        device.makeCurrent();
        Cuda.check(JCudaDriver.cuStreamWaitEvent(handle, event.event, 0), "cuStreamWaitEvent(" + device + ")");
    }

    public CUstream handle() {
        return handle;
    }

    public long address() {
        return handle.address();
    }

    public CudaDevice device() {
        return device;
    }

    public void synchronize() {
        CaptureState.refuse("cuStreamSynchronize(" + device + ")");
        device.makeCurrent();
        Cuda.check(JCudaDriver.cuStreamSynchronize(handle), "cuStreamSynchronize(" + device + ")");
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            device.makeCurrent();
            Cuda.check(JCudaDriver.cuStreamDestroy(handle), "cuStreamDestroy");
        }
    }
}
