package facm.tensor;

/**
 * The per-sample draws of one consistency step (facm.objectives: TimeSampler, the coefficients and the CFG labels
 * of TeacherVelocity), as constants an op can take. kind: {@link #FACM}, {@link #SCM} or {@link #MEANFLOW};
 * logSampler: t = 1 − sigmoid(n) instead of 1 − (2/π)·atan(eⁿ), n ~ N(timeMean, timeStd²); nullClass &lt; 0: no
 * unguided labels (no guidance). The methods are the reference formulas: the host path and the CPU forms of
 * {@link TrainingOps#consistencyDraws} both call them, kernels/step_inputs.cu repeats them.
 */
public record ConsistencyDraws(int kind, boolean logSampler, float timeMean, float timeStd, float relaxP,
                               float r2tRatio, int scmWarmup, float cfgLow, float cfgHigh, int nullClass) {
    public static final int FACM = 0;
    public static final int SCM = 1;
    public static final int MEANFLOW = 2;
    public static final long STREAM_T = 1L << 60;
    public static final long STREAM_R = 2L << 60;
    public static final long STREAM_NOISE = 3L << 60;
    public static final long STREAM_R2T = 4L << 60;

    public ConsistencyDraws {
        if (kind < FACM || kind > MEANFLOW) {
            throw new IllegalArgumentException("consistency draws: unknown kind " + kind);
        }
    }

    /** The Philox key of a step: a SplitMix64 mix of seed and step (FlowMatchingObjective.stepKey). */
    public static long stepKey(long seed, long step) {
        return mix(seed ^ mix(step + 0x632BE59BD9B4E019L));
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    /** One time from Philox normal number {@code counter} of {@code key}, in double, rounded once to float. */
    public float time(long key, long counter) {
        double n = (double) Philox.normal(key, counter) * timeStd + timeMean;
        double t = logSampler ? 1 - 1 / (1 + Math.exp(-n)) : 1 - (2 / Math.PI) * Math.atan(Math.exp(n));
        return (float) t;
    }

    /** t (and r, MeanFlow: r ≠ null) of global sample {@code g}: writes t[i] (and r[i]), t ≤ r. */
    public void times(long key, long g, float[] t, float[] r, int i) {
        t[i] = time(key, STREAM_T + g);
        if (r != null) {
            float other = Philox.uniform(key, STREAM_R2T + g) < r2tRatio ? t[i] : time(key, STREAM_R + g);
            r[i] = Math.max(t[i], other);
            t[i] = Math.min(t[i], other);
        }
    }

    /** (k, α, β) of sample i into c[3i..3i+2], computed in double (r: MeanFlow only). */
    public void coefficients(float[] t, float[] r, long step, float[] c, int i) {
        double ramp = scmWarmup == 0 ? 1 : Math.min(1.0, (double) step / scmWarmup);
        double ti = t[i];
        double trig = Math.cos(Math.PI * ti / 2);
        switch (kind) {
            case FACM -> {
                c[3 * i] = (float) (1 - ti);
                c[3 * i + 1] = (float) (1 - Math.pow(ti, relaxP));
                c[3 * i + 2] = (float) trig;
            }
            case MEANFLOW -> {
                c[3 * i] = (float) ((double) r[i] - ti);
                c[3 * i + 1] = 1f;
                c[3 * i + 2] = 1f;
            }
            default -> {
                c[3 * i] = (float) ((1 - ti) * ramp);
                c[3 * i + 1] = (float) trig;
                c[3 * i + 2] = 1f;
            }
        }
    }

    /** y' of sample i: the null class inside the guidance interval [cfgLow, cfgHigh], else y. */
    public int unguidedLabel(int y, float t) {
        return t >= cfgLow && t <= cfgHigh ? nullClass : y;
    }
}
