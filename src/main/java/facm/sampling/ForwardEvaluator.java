package facm.sampling;

import facm.tensor.Tensor;

import java.util.function.Function;

/**
 * How a sampler evaluates the network F(x, τ, y [, r]) for the whole batch at one time: eagerly (every op launched
 * from Java, any backend) or by replaying a captured CUDA graph. Both give the same values bit for bit: the graph
 * runs the same kernels in the same order. {@code r} is the auxiliary time input, passed only to models with the
 * auxiliary time embedder (§3.7: r = 1 for the CM task, r = t for the FM task).
 */
interface ForwardEvaluator extends AutoCloseable {
    /** F at the float64 host state {@code x} (rounded to f32 on the way to the device), returned to the host. */
    float[] evaluate(double[] x, int[] shape, double tau, double r, Tensor y);

    /**
     * F at the device tensor {@code x}, handed to {@code use} and valid only during that call (it may be a graph's
     * static output that the next evaluation overwrites). Returns what {@code use} returns.
     */
    <T> T withForward(Tensor x, double tau, double r, Tensor y, Function<Tensor, T> use);

    /** True when evaluations replay CUDA graphs. */
    boolean usesCudaGraphs();

    @Override
    void close();
}
