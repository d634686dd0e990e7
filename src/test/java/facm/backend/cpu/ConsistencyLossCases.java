package facm.backend.cpu;

import java.util.List;
import java.util.SplittableRandom;

/**
 * The consistency-loss configurations of facm-spec.md §5.2d and §5.7 and their inputs, shared by the CPU test
 * ({@link CpuConsistencyLossTest}) and the CUDA one (facm.backend.cuda.CudaConsistencyLossTest): per-sample
 * coefficients (k, α, β) drawn at random times as each method computes them, and random non-zero inputs.
 */
public final class ConsistencyLossCases {
    /** The op's scalar arguments for one method. {@code clip} ≤ 0 or infinite means no clip. */
    public record Config(String name, float clip, float normEps, float weightPower, float weightEps) {
        public boolean clipped() {
            return clip > 0 && clip < Float.POSITIVE_INFINITY;
        }
    }

    /** FACM: k = 1 − t, α = 1 − t^0.5, β = cos(πt/2), clip 1, adaptive weight power 0.5, eps 1e-3. */
    public static final Config FACM = new Config("FACM", 1f, 0f, 0.5f, 1e-3f);
    /** MeanFlow: k = r − t, α = β = 1, no clip (written as +∞), power 1, eps 1e-3. */
    public static final Config MEAN_FLOW = new Config("MeanFlow", Float.POSITIVE_INFINITY, 0f, 1f, 1e-3f);
    /** sCM: k = (1 − t)·ramp, α = cos(πt/2), β = 1, no clip (written as 0), tangent normalization 0.1, power 0. */
    public static final Config SCM = new Config("sCM", 0f, 0.1f, 0f, 1e-3f);
    public static final List<Config> ALL = List.of(FACM, MEAN_FLOW, SCM);

    /** B = 1, then B = 3, 4, 2 with an odd small shape, a B/1-like latent and the XL latent [32,16,16]. */
    public static final int[][] SHAPES = {{1, 4, 8, 8}, {3, 1, 5, 7}, {4, 4, 16, 16}, {2, 32, 16, 16}};

    /** sCM's tangent warm-up factor min(1, step/warmup) at some step of the warm-up. */
    public static final double SCM_RAMP = 0.3;

    private ConsistencyLossCases() {
    }

    /** coefs [B,3] = (k, α, β) per sample at times t in [0.02, 0.98] (MeanFlow: t ≤ r, both in that range). */
    public static float[] coefs(Config c, int batch, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] coefs = new float[3 * batch];
        for (int b = 0; b < batch; b++) {
            double t = 0.02 + 0.96 * r.nextDouble();
            double k, alpha, beta;
            if (c == FACM) {
                k = 1 - t;
                alpha = 1 - Math.sqrt(t);
                beta = Math.cos(Math.PI * t / 2);
            } else if (c == MEAN_FLOW) {
                double other = 0.02 + 0.96 * r.nextDouble();
                k = Math.abs(other - t); // r − t with t = min, r = max
                alpha = 1;
                beta = 1;
            } else if (c == SCM) {
                k = (1 - t) * SCM_RAMP;
                alpha = Math.cos(Math.PI * t / 2);
                beta = 1;
            } else {
                throw new IllegalArgumentException("no coefficients for " + c);
            }
            coefs[3 * b] = (float) k;
            coefs[3 * b + 1] = (float) alpha;
            coefs[3 * b + 2] = (float) beta;
        }
        return coefs;
    }

    /** n values with |v| in [0.1, 2] and random sign (residuals F − v − k·Ḟ then reach well past the FACM clip 1). */
    public static float[] inputs(long seed, int n) {
        return ReferenceData.nonZero(seed, n);
    }

    public static int numel(int[] shape) {
        return ReferenceData.numel(shape);
    }
}
