package facm.objectives;


import facm.tensor.ConsistencyDraws;
import java.util.List;

/**
 * Stage-2 time sampling (facm-spec.md §5.2a): n ~ N(mean, std²) and t = 1 − (2/π)·atan(eⁿ) ("default", the
 * reference's arctan-of-lognormal sampler, skewed toward data: median t ≈ 0.73 at the defaults N(−0.8, 1.6²)) or
 * t = 1 − sigmoid(n) ("log"). MeanFlow (§5.7) draws a second time the same way and orders the pair, t = min and
 * r = max, after setting r := t for a fraction of samples.
 *
 * <p>Every draw is a function of (step key, sample index) only: Philox counters (1 &lt;&lt; 60) + i for t,
 * (2 &lt;&lt; 60) + i for r and (4 &lt;&lt; 60) + i for the r := t choice (the noise uses 3 &lt;&lt; 60), so a sample's
 * times do not depend on the batch size and a resumed run repeats them. The reference picks exactly
 * ⌊ratio·B⌋ random samples for r := t; here each sample is chosen with probability ratio (same expectation, and
 * independent of the batch).
 */
final class TimeSampler {
    static final List<String> KINDS = List.of("default", "log");

    /** t per sample, and r (MeanFlow only, else null) with t ≤ r. */
    record Draws(float[] t, float[] r) {
    }

    private final ConsistencyObjective.Options options;
    /** The formulas, shared with the device-side draws (TrainingOps#consistencyDraws). */
    private final ConsistencyDraws formulas;

    TimeSampler(ConsistencyObjective.Options options) {
        this.options = options;
        this.formulas = options.draws(-1);
    }

    Draws draws(long key, int batch) {
        return draws(key, 0, batch);
    }

    /** The draws of the {@code batch} samples at global positions first, first + 1, …. */
    Draws draws(long key, int first, int batch) {
        float[] t = new float[batch];
        float[] r = options.kind() == ConsistencyObjective.Kind.MEANFLOW ? new float[batch] : null;
        for (int i = 0; i < batch; i++) {
            formulas.times(key, first + (long) i, t, r, i);
        }
        return new Draws(t, r);
    }

    /** One time from Philox normal number {@code counter} of {@code key}, in double, rounded once to float. */
    float time(long key, long counter) {
        return formulas.time(key, counter);
    }
}
