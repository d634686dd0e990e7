package facm.objectives;

import facm.autograd.Gradients;
import facm.autograd.Tape;
import facm.data.Batch;
import facm.model.LightningDiT;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import facm.tensor.TensorScope;
import facm.training.Objective;
import facm.training.SampleSlice;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Stage 1 of facm-spec.md §4: flow matching with the expanded interval. Per sample: t ~ U(0,1), ε ~ N(0, I),
 * x_t = t·x₁ + (1 − t)·ε (computed as ε + t·u), target u = x₁ − ε; the network time is t for the first half of the
 * batch and 2 − t for the second half (indices ≥ ⌊B/2⌋; same x_t and target); labels are replaced by the null class
 * with probability 0.1. Loss = batch mean of ℓ_b = mean_CHW (F − u)² + mean_HW (1 − cos_C(F, u)), through
 * {@link facm.tensor.TrainingOps#flowMatchingLoss} with gradScale 1/B. A model with the auxiliary time embedder gets
 * r = its time input (§3.7: FM on (t, r = t)).
 *
 * <p>Randomness, a pure function of (seed, step, sample index) so a resumed run repeats exactly and a sample's draws
 * do not depend on the batch size: Philox key = {@link #stepKey}(seed, step); counters
 * (stream &lt;&lt; 60) + i for t (stream 1) and label dropout (stream 2), and (3 &lt;&lt; 60) + i·CHW + j for
 * element j of sample i's noise.
 */
public final class FlowMatchingObjective implements Objective {
    private static final long STREAM_TIME = 1L << 60;
    private static final long STREAM_LABEL_DROP = 2L << 60;
    static final long STREAM_NOISE = 3L << 60;

    /** labelDropout: probability of the null class per sample; expandedInterval: τ = 2 − t for the second half. */
    public record Options(float labelDropout, boolean expandedInterval) {
        public Options {
            if (!(labelDropout >= 0f && labelDropout <= 1f)) {
                throw new IllegalArgumentException("fm objective: label dropout must be in [0, 1], got "
                        + labelDropout);
            }
        }

        /** Stage 1 as in §4: dropout 0.1, expanded interval on. */
        public static Options defaults() {
            return new Options(0.1f, true);
        }
    }

    private final long seed;
    private final Options options;
    private final TrainedModel trained;
    private Map<String, Double> lastMetrics = Map.of();

    public FlowMatchingObjective(long seed, GemmPrecision precision, Options options) {
        this.seed = seed;
        this.trained = new TrainedModel(precision);
        this.options = options;
    }

    @Override
    public String name() {
        return "fm";
    }

    public Options options() {
        return options;
    }

    /** As {@link Objective#lossAndGradients}; {@code grads} may also be null (the loss alone, no tape). */
    @Override
    public float lossAndGradients(ModelWeights weights, Gradients grads, Batch batch, long step) {
        return lossAndGradients(weights, grads, batch, step, SampleSlice.whole(batch.size()));
    }

    /** A rank's slice: draws, noise and the expanded-interval half by global sample position. */
    @Override
    public float lossAndGradients(ModelWeights weights, Gradients grads, Batch batch, long step, SampleSlice slice) {
        LightningDiT m = trained.of(weights);
        int b = batch.size();
        requireSlice(slice, b);
        Draws d = draws(step, batch.labels(), weights.config().numClasses(), slice.first());
        Backend be = weights.backend();
        try (TensorScope s = new TensorScope()) {
            Tensor x1 = s.track(be.upload("x1", batch.images(), batch.shape()));
            Tensor eps = s.track(be.empty("eps", DType.F32, batch.shape()));
            noise(step, eps, slice.first());
            Tensor y = s.track(be.upload("y", d.labels(), b));
            return loss(m, grads, x1, eps, d.t(), y, slice);
        }
    }

    static void requireSlice(SampleSlice slice, int b) {
        if (slice.size() != b) {
            throw new IllegalArgumentException("the batch holds " + b + " samples but its slice " + slice + " has "
                    + slice.size());
        }
    }

    /** The per-sample draws of one step: t (before the 2 − t swap) and the labels after dropout. */
    public record Draws(float[] t, int[] labels) {
    }

    /** t_i ~ U(0,1) and label dropout for sample i of {@code step}: functions of (seed, step, i) only. */
    public Draws draws(long step, int[] labels, int nullClass) {
        return draws(step, labels, nullClass, 0);
    }

    /** As above for samples at global positions first, first + 1, … of the step's batch. */
    public Draws draws(long step, int[] labels, int nullClass, int first) {
        long key = stepKey(seed, step);
        float[] t = new float[labels.length];
        int[] dropped = labels.clone();
        for (int i = 0; i < labels.length; i++) {
            t[i] = Philox.uniform(key, STREAM_TIME + first + i);
            if (Philox.uniform(key, STREAM_LABEL_DROP + first + i) < options.labelDropout()) {
                dropped[i] = nullClass;
            }
        }
        return new Draws(t, dropped);
    }

    /** ε of {@code step} into {@code eps} [B,C,H,W]: element j of sample i from counter (3 &lt;&lt; 60) + i·CHW + j. */
    public void noise(long step, Tensor eps) {
        noise(step, eps, 0);
    }

    /** ε for samples at global positions first, first + 1, …: sample i's counters start at (3 &lt;&lt; 60) + i·CHW. */
    public void noise(long step, Tensor eps, int first) {
        eps.backend().randomNormal(eps, stepKey(seed, step), noiseOffset(eps, first));
    }

    /** The Philox counter of element 0 of the sample at global position {@code first}. */
    static long noiseOffset(Tensor eps, int first) {
        return STREAM_NOISE + (long) first * (eps.numel() / eps.dim(0));
    }

    /**
     * The deterministic core (also used by the gradient fixture test): loss for given x₁, ε, t (per sample, before
     * the 2 − t swap) and labels (after dropout). Accumulates into {@code grads} unless it is null.
     */
    public float loss(LightningDiT m, Gradients grads, Tensor x1, Tensor eps, float[] t, Tensor y) {
        return loss(m, grads, x1, eps, t, y, SampleSlice.whole(x1.dim(0)));
    }

    /** As above for a slice of the global batch: the expanded interval applies to global positions ≥ ⌊B/2⌋. */
    public float loss(LightningDiT m, Gradients grads, Tensor x1, Tensor eps, float[] t, Tensor y, SampleSlice slice) {
        Backend be = x1.backend();
        int b = x1.dim(0);
        requireSlice(slice, b);
        int perSampleSize = (int) (x1.numel() / b);
        float[] tau = new float[b];
        float[] tExpanded = new float[(int) x1.numel()];
        for (int i = 0; i < b; i++) {
            int global = slice.first() + i;
            tau[i] = options.expandedInterval() && global >= slice.globalBatch() / 2 ? 2f - t[i] : t[i];
            java.util.Arrays.fill(tExpanded, i * perSampleSize, (i + 1) * perSampleSize, t[i]);
        }
        try (TensorScope s = new TensorScope();
             Tape tape = grads == null ? null : Tape.forParameters(m.weights(), grads)) {
            Tensor target = s.track(be.empty("u", DType.F32, x1.shape()));
            be.axpby(1f, x1, -1f, eps, target);
            Tensor xt = s.track(be.upload("t", tExpanded, x1.shape()));
            be.binary(BinaryOp.MUL, xt, target, xt);
            be.binary(BinaryOp.ADD, xt, eps, xt);
            Tensor tauT = s.track(be.upload("tau", tau, b));
            Tensor pred = s.track(m.forward(xt, tauT, y, m.config().auxTime() ? tauT : null, tape));
            Tensor perSample = s.track(be.empty("loss", DType.F32, b));
            Tensor gradPred = tape == null ? null : s.track(be.empty("dloss/dF", DType.F32, pred.shape()));
            be.training().flowMatchingLoss(pred, target, perSample, gradPred, 1f / b);
            Tensor squaredError = sumOfSquaredErrors(be, pred, target, s);
            if (tape != null) {
                tape.backward(pred, gradPred);
            }
            float mse = (float) (be.download(squaredError)[0] / pred.numel()); // read after the backward is queued
            double sum = 0;
            for (float v : be.download(perSample)) {
                sum += v;
            }
            float loss = (float) (sum / b);
            Map<String, Double> mtr = new LinkedHashMap<>();
            mtr.put("mse", (double) mse);
            mtr.put("cos", (double) loss - mse);
            lastMetrics = Map.copyOf(mtr);
            return loss;
        }
    }

    /** Σ (F − u)² over the batch ([1]): the MSE term of the loss, logged next to the total. */
    private static Tensor sumOfSquaredErrors(Backend be, Tensor pred, Tensor target, TensorScope s) {
        Tensor diff = s.track(be.empty("F - u", DType.F32, pred.shape()));
        be.axpby(1f, pred, -1f, target, diff);
        Tensor acc = s.track(be.zeros(DType.F32, 1));
        be.training().sumOfSquares(diff, acc);
        return acc;
    }

    @Override
    public void checkpointBlocks(boolean on) {
        trained.checkpointBlocks(on);
    }

    @Override
    public Map<String, Double> lastMetrics() {
        return lastMetrics;
    }

    /** The Philox key of one step: a splitmix64 mix of seed and step (distinct steps give unrelated streams). */
    public static long stepKey(long seed, long step) {
        return facm.tensor.ConsistencyDraws.stepKey(seed, step);
    }
}
