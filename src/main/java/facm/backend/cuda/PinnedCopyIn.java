package facm.backend.cuda;

import facm.cuda.CudaDevice;
import facm.cuda.CudaEvent;
import facm.cuda.CudaStream;
import facm.cuda.PinnedHostBuffer;
import facm.tensor.ShapeException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.HashMap;
import java.util.Map;

/**
 * {@link CudaTrainingOps#copyIn}: host values into a fixed device buffer with one asynchronous copy from pinned memory
 * (the per-step batch of the captured training step). One staging buffer per destination address (fixed buffers: one
 * each, allocated on first use) and an event recorded right after its copy: before the host overwrites a staging
 * buffer it waits for that event only, i.e. for the previous copy to have left it, not for the previous step.
 */
final class PinnedCopyIn implements AutoCloseable {
    private final CudaDevice device;
    private final CudaStream stream;
    private final Map<Long, Staging> staging = new HashMap<>();

    private record Staging(PinnedHostBuffer host, CudaEvent copied) implements AutoCloseable {
        @Override
        public void close() {
            copied.synchronize();
            copied.close();
            host.close();
        }
    }

    PinnedCopyIn(CudaDevice device, CudaStream stream) {
        this.device = device;
        this.stream = stream;
    }

    void copyIn(float[] values, CudaTensor dst) {
        Staging st = stagingFor(dst, values.length);
        MemorySegment.copy(values, 0, st.host().segment(), ValueLayout.JAVA_FLOAT, 0, values.length);
        queueCopy(st, dst);
    }

    void copyIn(int[] values, CudaTensor dst) {
        Staging st = stagingFor(dst, values.length);
        MemorySegment.copy(values, 0, st.host().segment(), ValueLayout.JAVA_INT, 0, values.length);
        queueCopy(st, dst);
    }

    /** The staging of dst, once its last copy has left it. */
    private Staging stagingFor(CudaTensor dst, int values) {
        if (values != dst.numel()) {
            throw new ShapeException("copyIn: " + values + " host values for " + dst.describe());
        }
        Staging st = staging.get(dst.address());
        if (st != null && st.host().bytes() != dst.bytes()) {
            staging.remove(dst.address()).close(); // another tensor now lives at that address
            st = null;
        }
        if (st == null) {
            PinnedHostBuffer h = PinnedHostBuffer.allocate(device, dst.bytes(), "copyIn " + dst.name());
            try {
                st = new Staging(h, CudaEvent.create(device));
            } catch (RuntimeException e) {
                h.close();
                throw e;
            }
            staging.put(dst.address(), st);
        } else {
            st.copied().synchronize();
        }
        return st;
    }

    private void queueCopy(Staging st, CudaTensor dst) {
        st.host().copyToDeviceAsync(dst.buffer(), dst.bytes(), stream);
        st.copied().record(stream);
    }

    @Override
    public void close() {
        staging.values().forEach(Staging::close);
        staging.clear();
    }
}
