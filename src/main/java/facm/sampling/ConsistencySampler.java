package facm.sampling;

import facm.model.LightningDiT;
import facm.tensor.Backend;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.function.IntFunction;

/**
 * The FACM few-step sampler (facm-spec.md §7): the network output at time t is the average velocity from t to 1, so
 * x̂₁ = x_t + (1 − t)·F(x_t, t, y). With N steps on the grid t_k = k/N it re-noises between steps with fresh noise,
 * x_(k+1) = t_(k+1)·x̂₁ + (1 − t_(k+1))·ε', and returns the last x̂₁. The state update runs in float64 on the host.
 * Noise is Philox (seed, counter): step k's re-noise uses counters from (k+1)·numel, so the starting noise z may be
 * drawn with counters [0, numel) without overlap.
 *
 * <p>One step is x̂₁ = z + F(z, 0, y), computed on the device as one f32 add: the float64 update rounded to f32 gives
 * the same value (the sum of two floats rounded to double and then to float is the correctly rounded float sum, as
 * 53 ≥ 2·24 + 2), so the one-step path makes no host round trip at all.
 *
 * <p>An instance keeps its evaluator between calls: on the CUDA backend it captures the forward as a CUDA graph per
 * batch shape on first use and replays it after that ({@link GraphedForward}; off with {@code -Dfacm.cudaGraphs=false}
 * or the constructor flag), so hold one sampler for a run of many batches and close it at the end. The static
 * methods evaluate eagerly (a graph would not pay for itself in one call).
 */
public final class ConsistencySampler implements AutoCloseable {
    private final ForwardEvaluator forward;

    /** A sampler of {@code model}, with CUDA graphs when {@link GraphedForward#enabledFor} says so. */
    public ConsistencySampler(LightningDiT model) {
        this(model, GraphedForward.enabledFor(model));
    }

    /** A sampler of {@code model}; {@code cudaGraphs} has no effect on the CPU backend. */
    public ConsistencySampler(LightningDiT model, boolean cudaGraphs) {
        this.forward = GraphedForward.evaluatorFor(model, cudaGraphs);
    }

    public boolean usesCudaGraphs() {
        return forward.usesCudaGraphs();
    }

    public static Tensor sample(LightningDiT model, Tensor z, Tensor y, int steps, long seed) {
        return sample(model, z, y, steps, seed, 0, z.numel());
    }

    /**
     * As {@link #sample(LightningDiT, Tensor, Tensor, int, long)} for one batch of a larger run: step k re-noises with
     * counters from {@code (k+1)·totalElements + batchOffset}, so every sample gets the same noise whatever the batch
     * size (draw z with counters from {@code batchOffset} too).
     */
    public static Tensor sample(LightningDiT model, Tensor z, Tensor y, int steps, long seed, long batchOffset,
                                long totalElements) {
        try (ConsistencySampler s = new ConsistencySampler(model, false)) {
            return s.sample(z, y, steps, seed, batchOffset, totalElements);
        }
    }

    /** The sampler with the re-noise ε' of step k → k+1 supplied by {@code renoise} (k = 0..steps−2). */
    public static Tensor sample(LightningDiT model, Tensor z, Tensor y, int steps, IntFunction<float[]> renoise) {
        try (ConsistencySampler s = new ConsistencySampler(model, false)) {
            return s.sample(z, y, steps, renoise);
        }
    }

    public Tensor sample(Tensor z, Tensor y, int steps, long seed) {
        return sample(z, y, steps, seed, 0, z.numel());
    }

    /** See {@link #sample(LightningDiT, Tensor, Tensor, int, long, long, long)}. */
    public Tensor sample(Tensor z, Tensor y, int steps, long seed, long batchOffset, long totalElements) {
        Backend be = z.backend();
        return sample(z, y, steps, k -> {
            try (Tensor e = be.empty("renoise", DType.F32, z.shape())) {
                be.randomNormal(e, seed, (k + 1) * totalElements + batchOffset);
                return be.download(e);
            }
        });
    }

    /** See {@link #sample(LightningDiT, Tensor, Tensor, int, IntFunction)}. */
    public Tensor sample(Tensor z, Tensor y, int steps, IntFunction<float[]> renoise) {
        if (steps < 1) {
            throw new IllegalArgumentException("consistency sampler needs at least 1 step, got " + steps);
        }
        Backend be = z.backend();
        if (steps == 1) {
            return forward.withForward(z, 0.0, 1.0, y, f -> plus(be, z, f));
        }
        int b = z.dim(0);
        double[] x = HostState.toDouble(be.download(z));
        double[] xhat = new double[x.length];
        for (int k = 0; k < steps; k++) {
            double tk = (double) k / steps;
            float[] d = forward.evaluate(x, z.shape(), tk, 1.0, y);
            if (k == steps - 1) {
                HostState.forEachChunk(x.length, (from, to) -> {
                    for (int i = from; i < to; i++) {
                        xhat[i] = x[i] + (1.0 - tk) * d[i];
                    }
                });
                break;
            }
            double tn = (double) (k + 1) / steps;
            float[] eps = renoise.apply(k);
            if (eps.length != x.length) {
                throw new IllegalArgumentException("re-noise for step " + k + " has " + eps.length
                        + " values, the state has " + x.length + " (batch " + b + ")");
            }
            // x̂ and the re-noised state in one elementwise pass (the same two float64 expressions per element).
            HostState.forEachChunk(x.length, (from, to) -> {
                for (int i = from; i < to; i++) {
                    xhat[i] = x[i] + (1.0 - tk) * d[i];
                    x[i] = tn * xhat[i] + (1.0 - tn) * eps[i];
                }
            });
        }
        return be.upload("samples", HostState.toFloat(xhat), z.shape());
    }

    /** z + f as a new f32 tensor (f converted to f32 first if the network returned another dtype). */
    private static Tensor plus(Backend be, Tensor z, Tensor f) {
        Tensor out = be.empty("samples", DType.F32, z.shape());
        try {
            if (f.dtype() == DType.F32) {
                be.binary(BinaryOp.ADD, z, f, out);
            } else {
                be.convert(f, out);
                be.binary(BinaryOp.ADD, z, out, out);
            }
            return out;
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
    }

    @Override
    public void close() {
        forward.close();
    }
}
