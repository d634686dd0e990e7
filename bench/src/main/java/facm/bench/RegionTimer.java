package facm.bench;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaEvent;
import facm.cuda.CudaStream;
import facm.tensor.Backend;

/**
 * Times a measured region: on CUDA two events recorded on the backend's stream (the device's main stream, where every
 * op of the engine is queued), so the time is what the GPU's timeline spent from the first queued op to the last,
 * idle gaps of host work included; on the CPU backend the wall clock. {@link #end()} waits for the end event and hands
 * the milliseconds to {@link GpuTimes}.
 */
final class RegionTimer implements AutoCloseable {
    private final CudaStream stream;
    private final CudaEvent start;
    private final CudaEvent stop;
    private long startNanos;

    RegionTimer(Backend backend) {
        if (backend instanceof CudaBackend cuda) {
            stream = cuda.cudaDevice().stream();
            start = CudaEvent.create(cuda.cudaDevice());
            CudaEvent e;
            try {
                e = CudaEvent.create(cuda.cudaDevice());
            } catch (RuntimeException ex) {
                start.close();
                throw ex;
            }
            stop = e;
        } else {
            stream = null;
            start = null;
            stop = null;
        }
    }

    void begin() {
        if (start != null) {
            start.record(stream);
        } else {
            startNanos = System.nanoTime();
        }
    }

    /** Ends the region, records its time and returns it in milliseconds. */
    double end() {
        double ms;
        if (stop != null) {
            stop.record(stream);
            ms = stop.elapsedMillisSince(start);
        } else {
            ms = (System.nanoTime() - startNanos) / 1e6;
        }
        GpuTimes.add(ms);
        return ms;
    }

    @Override
    public void close() {
        if (start != null) {
            start.close();
            stop.close();
        }
    }
}
