package facm.sampling;

import facm.model.LightningDiT;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.function.IntFunction;

/**
 * The FACM few-step sampler (facm-spec.md §7): the network output at time t is the average velocity from t to 1, so
 * x̂₁ = x_t + (1 − t)·F(x_t, t, y). With N steps on the grid t_k = k/N it re-noises between steps with fresh noise,
 * x_(k+1) = t_(k+1)·x̂₁ + (1 − t_(k+1))·ε', and returns the last x̂₁. The state update runs in float64 on the host.
 * Noise is Philox (seed, counter): step k's re-noise uses counters from (k+1)·numel, so the starting noise z may be
 * drawn with counters [0, numel) without overlap.
 */
public final class ConsistencySampler {
    private ConsistencySampler() {
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
        Backend be = z.backend();
        return sample(model, z, y, steps, k -> {
            try (Tensor e = be.empty("renoise", DType.F32, z.shape())) {
                be.randomNormal(e, seed, (k + 1) * totalElements + batchOffset);
                return be.download(e);
            }
        });
    }

    /** The sampler with the re-noise ε' of step k → k+1 supplied by {@code renoise} (k = 0..steps−2). */
    public static Tensor sample(LightningDiT model, Tensor z, Tensor y, int steps, IntFunction<float[]> renoise) {
        if (steps < 1) {
            throw new IllegalArgumentException("consistency sampler needs at least 1 step, got " + steps);
        }
        Backend be = z.backend();
        int b = z.dim(0);
        double[] x = HostState.toDouble(be.download(z));
        double[] xhat = new double[x.length];
        for (int k = 0; k < steps; k++) {
            double tk = (double) k / steps;
            float[] d = HostState.evaluate(model, x, z.shape(), tk, 1.0, y, b);
            for (int i = 0; i < x.length; i++) {
                xhat[i] = x[i] + (1.0 - tk) * d[i];
            }
            if (k < steps - 1) {
                double tn = (double) (k + 1) / steps;
                float[] eps = renoise.apply(k);
                if (eps.length != x.length) {
                    throw new IllegalArgumentException("re-noise for step " + k + " has " + eps.length
                            + " values, the state has " + x.length);
                }
                for (int i = 0; i < x.length; i++) {
                    x[i] = tn * xhat[i] + (1.0 - tn) * eps[i];
                }
            }
        }
        return be.upload("samples", HostState.toFloat(xhat), z.shape());
    }
}
