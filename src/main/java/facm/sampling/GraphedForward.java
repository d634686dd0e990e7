package facm.sampling;

import facm.backend.cuda.CudaBackend;
import facm.model.LightningDiT;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * {@link LightningDiT#forward} through CUDA graphs: one graph per (input shape, precision, with or without r),
 * captured on first use and replayed after that. A replay copies the inputs into the graph's static input tensors
 * (device to device), launches the graph, and leaves the result in its static output, so a whole forward costs one
 * {@code cuGraphLaunch} from Java instead of hundreds of kernel launches. The values are bit-identical to the eager
 * forward: the same kernels in the same order on the same shapes (cuBLASLt picks its algorithm per shape and pointer
 * alignment, and graph buffers are aligned like eager ones).
 *
 * <p>The graphs read the model's weight tensors at the addresses they had when captured: update weights in place
 * (as the optimizer and EMA do) and the next replay sees the new values, but do not replace or close the weight
 * tensors while this object is open. With {@link LightningDiT#cacheBf16Weights} on, a graph reads the bf16 copies
 * that existed when it was captured, so invalidating the cache does not reach it: after in-place weight updates,
 * close this object and make a new one (samplers of a frozen model need neither). Each graph holds its activations in its own memory pool for as long as it
 * lives (for LightningDiT-XL/1 at batch 256 in fp32 that is a few GiB); {@link #close()} releases everything. One
 * thread at a time, like the backend's stream.
 */
public final class GraphedForward implements ForwardEvaluator {
    /** System property that turns CUDA graphs off for the samplers when "false". */
    public static final String PROPERTY = "facm.cudaGraphs";

    private record Key(List<Integer> shape, GemmPrecision precision, boolean hasR) {
        static Key of(int[] shape, GemmPrecision precision, boolean hasR) {
            return new Key(Arrays.stream(shape).boxed().toList(), precision, hasR);
        }

        @Override
        public String toString() {
            return "forward " + shape + " " + precision + (hasR ? " with r" : "");
        }
    }

    private final LightningDiT model;
    private final CudaBackend backend;
    private final Map<Key, ForwardGraph> graphs = new LinkedHashMap<>();
    private boolean closed;

    /** Graphs of {@code model}'s forward; the model must live on the CUDA backend. */
    public GraphedForward(LightningDiT model) {
        if (!(model.weights().backend() instanceof CudaBackend cuda)) {
            throw new IllegalArgumentException("CUDA graphs need the CUDA backend; model " + model.config().name()
                    + " is on " + model.weights().backend().describe());
        }
        this.model = model;
        this.backend = cuda;
    }

    /** True when {@code model} is on the CUDA backend, where graphs can be used. */
    public static boolean supports(LightningDiT model) {
        return model.weights().backend() instanceof CudaBackend;
    }

    /** The samplers' default: graphs on the CUDA backend unless {@code -Dfacm.cudaGraphs=false}. */
    public static boolean enabledFor(LightningDiT model) {
        return supports(model) && !"false".equalsIgnoreCase(System.getProperty(PROPERTY, "true").trim());
    }

    /** The evaluator samplers use: graphs when asked for and supported, else eager forwards. */
    static ForwardEvaluator evaluatorFor(LightningDiT model, boolean cudaGraphs) {
        return cudaGraphs && supports(model) ? new GraphedForward(model) : new EagerForward(model);
    }

    /**
     * F(x, t, y [, r]) as a new tensor the caller owns, equal bit for bit to {@code model.forward(x, t, y, r)}.
     * Costs a device-to-device copy of the output on top of {@link #replay}.
     */
    public Tensor forward(Tensor x, Tensor t, Tensor y, Tensor r) {
        Tensor out = replay(x, t, y, r);
        Tensor copy = backend.empty("forward output", out.dtype(), out.shape());
        try {
            backend.copy(out, copy);
        } catch (RuntimeException e) {
            copy.close();
            throw e;
        }
        return copy;
    }

    /**
     * F(x, t, y [, r]) in the graph's static output: owned by this object and overwritten by the next call with the
     * same shapes, so read (or copy) it before that. Nothing waits for the device.
     */
    public Tensor replay(Tensor x, Tensor t, Tensor y, Tensor r) {
        ForwardGraph g = graphFor(x.shape(), r != null);
        g.copyInputs(x, t, y, r);
        g.launch();
        return g.output();
    }

    @Override
    public float[] evaluate(double[] x, int[] shape, double tau, double r, Tensor y) {
        ForwardGraph g = graphFor(shape, model.config().auxTime());
        g.uploadState(x);
        g.fillTimes((float) tau, (float) r);
        g.copyLabels(y);
        g.launch();
        return g.downloadOutput();
    }

    @Override
    public <T> T withForward(Tensor x, double tau, double r, Tensor y, Function<Tensor, T> use) {
        ForwardGraph g = graphFor(x.shape(), model.config().auxTime());
        g.copyState(x);
        g.fillTimes((float) tau, (float) r);
        g.copyLabels(y);
        g.launch();
        return use.apply(g.output());
    }

    @Override
    public boolean usesCudaGraphs() {
        return true;
    }

    private ForwardGraph graphFor(int[] shape, boolean hasR) {
        if (closed) {
            throw new IllegalStateException("GraphedForward of " + model.config().name() + " was closed");
        }
        Key key = Key.of(shape, model.precision(), hasR);
        ForwardGraph g = graphs.get(key);
        if (g == null) {
            g = new ForwardGraph(model, backend, model.config().name() + " " + key, shape, hasR);
            graphs.put(key, g);
        }
        return g;
    }

    /** How many graphs (shapes) have been made. */
    public int graphCount() {
        return graphs.size();
    }

    /** Nodes of the graph for this input shape (0 when it has not been captured yet). */
    public long nodeCount(int[] shape, boolean hasR) {
        ForwardGraph g = graphs.get(Key.of(shape, model.precision(), hasR));
        return g == null || g.graph() == null ? 0 : g.graph().nodeCount();
    }

    /** Destroys every graph and releases its memory. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException first = null;
        for (ForwardGraph g : graphs.values()) {
            try {
                g.close();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        graphs.clear();
        if (first != null) {
            throw first;
        }
    }
}
