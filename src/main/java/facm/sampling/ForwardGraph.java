package facm.sampling;

import facm.backend.cuda.CudaBackend;
import facm.backend.cuda.CudaTensor;
import facm.cuda.CudaDevice;
import facm.cuda.CudaGraph;
import facm.cuda.CudaStream;
import facm.cuda.DeviceArena;
import facm.cuda.GraphMemoryPool;
import facm.cuda.PinnedHostBuffer;
import facm.model.LightningDiT;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One captured {@link LightningDiT#forward} for one input shape, precision and r-or-not: static input tensors x, τ, y
 * [, r] that the caller writes before each replay, the graph, and the static output it writes. The graph is captured
 * on the first {@link #launch()}: one eager warm-up run in the graph's pool (it makes the lazily created state such
 * as the cuBLASLt workspace and op scratch, and leaves every block the forward needs in the pool), then the capture,
 * which runs nothing; the first launch then computes the output. Everything here runs on the device's main stream.
 */
final class ForwardGraph implements AutoCloseable {
    private final LightningDiT model;
    private final CudaBackend backend;
    private final String name;
    private final CudaTensor x;
    private final CudaTensor t;
    private final CudaTensor y;
    private final CudaTensor r;
    private CudaGraph graph;
    private Tensor output;
    private PinnedHostBuffer staging;

    ForwardGraph(LightningDiT model, CudaBackend backend, String name, int[] shape, boolean hasR) {
        this.model = model;
        this.backend = backend;
        this.name = name;
        int b = shape[0];
        CudaTensor xs = null;
        CudaTensor ts = null;
        CudaTensor ys = null;
        try {
            xs = backend.empty("graph input x", DType.F32, shape);
            ts = backend.empty("graph input tau", DType.F32, b);
            ys = backend.empty("graph input y", DType.I32, b);
            this.r = hasR ? backend.empty("graph input r", DType.F32, b) : null;
        } catch (RuntimeException e) {
            closeAll(xs, ts, ys);
            throw e;
        }
        this.x = xs;
        this.t = ts;
        this.y = ys;
    }

    String name() {
        return name;
    }

    CudaGraph graph() {
        return graph;
    }

    /** D2D copies of the inputs into the static inputs (queued; nothing waits). {@code rIn} only with r. */
    void copyInputs(Tensor xIn, Tensor tIn, Tensor yIn, Tensor rIn) {
        backend.copy(xIn, x);
        backend.copy(tIn, t);
        copyLabels(yIn);
        if (r != null) {
            backend.copy(rIn, r);
        }
    }

    void copyState(Tensor xIn) {
        backend.copy(xIn, x);
    }

    void copyLabels(Tensor yIn) {
        backend.copy(yIn, y);
    }

    /** τ (and r, when the graph has it) equal for the whole batch: fill kernels, the same f32 values an upload gives. */
    void fillTimes(float tau, float rValue) {
        backend.fill(t, tau);
        if (r != null) {
            backend.fill(r, rValue);
        }
    }

    /** Queues the upload of the float64 state, rounded to f32, into the static x through pinned memory. */
    void uploadState(double[] state) {
        if (state.length != x.numel()) {
            throw new IllegalArgumentException(name + ": state of " + state.length + " values for " + x.describe());
        }
        MemorySegment s = staging().segment();
        HostState.forEachChunk(state.length, (from, to) -> {
            for (int i = from; i < to; i++) {
                s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) state[i]);
            }
        });
        staging.copyToDeviceAsync(x.buffer(), x.bytes(), stream());
    }

    /** Queues the download of the static output and waits for it: the one synchronization of an evaluation. */
    float[] downloadOutput() {
        CudaTensor out = backend.require(name + " output", output);
        if (out.dtype() != DType.F32) {
            return backend.download(out); // converts on the host; not the hot path of any model we have
        }
        PinnedHostBuffer s = staging();
        s.copyFromDeviceAsync(out.buffer(), out.bytes(), stream());
        stream().synchronize();
        return s.segment().asSlice(0, out.bytes()).toArray(ValueLayout.JAVA_FLOAT);
    }

    private PinnedHostBuffer staging() {
        if (staging == null) {
            staging = PinnedHostBuffer.allocate(backend.cudaDevice(), x.bytes(), name + " staging");
        }
        return staging;
    }

    private CudaStream stream() {
        return backend.cudaDevice().stream();
    }

    /** Replays the graph (capturing it first if needed) on the current contents of the static inputs. */
    void launch() {
        if (graph == null) {
            capture();
        }
        graph.launch();
    }

    /** The static output, written by each launch; owned by this graph. */
    Tensor output() {
        if (output == null) {
            throw new IllegalStateException(name + ": not launched yet");
        }
        return output;
    }

    private void capture() {
        CudaDevice device = backend.cudaDevice();
        DeviceArena arena = device.arena();
        GraphMemoryPool pool = arena.newPool(name);
        try {
            try (DeviceArena.PoolScope scope = arena.usePool(pool)) {
                model.forward(x, t, y, r).close();
            }
            device.stream().synchronize(); // a fault of the warm-up is reported here, not inside the capture
        } catch (RuntimeException e) {
            pool.close();
            throw e;
        }
        Tensor[] captured = new Tensor[1];
        try {
            graph = CudaGraph.capture(name, device.stream(), pool, () -> captured[0] = model.forward(x, t, y, r));
        } catch (RuntimeException e) {
            if (captured[0] != null) {
                captured[0].close();
            }
            throw e;
        }
        output = captured[0];
    }

    /** Waits for the device, destroys the graph and releases its pool, then frees the static tensors. */
    @Override
    public void close() {
        try {
            if (graph != null) {
                graph.close();
            }
        } finally {
            closeAll(output, x, t, y, r);
            if (staging != null) {
                staging.close();
            }
        }
    }

    private static void closeAll(Tensor... ts) {
        for (Tensor t : ts) {
            if (t != null) {
                t.close();
            }
        }
    }
}
