package facm.objectives;

import facm.autograd.Gradients;
import facm.data.Batch;
import facm.model.LightningDiT;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.BinaryOp;
import facm.tensor.ConsistencyDraws;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import facm.tensor.TensorScope;
import facm.tensor.TrainingOps;
import facm.training.Objective;
import facm.training.SampleSlice;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Stage 2 of facm-spec.md: the FACM objective (§5.2) and the two baselines shipped beside it (§5.7: MeanFlow and
 * sCM), one code path with a {@link Kind}. Per step: time(s) from {@link TimeSampler}, ε ~ N(0, I),
 * x_t = t·x₁ + (1 − t)·ε, u = x₁ − ε, the guided velocity v of {@link TeacherVelocity} (no gradient), then
 * <ul>
 *   <li>FACM only, the FM anchor: F_FM = F_θ(x_t, 2 − t, y) (auxiliary-time model: (t, r = t)) against v with
 *       MSE + cosine ({@link facm.tensor.TrainingOps#flowMatchingLoss}), forward and backward on its own tape, so its
 *       activations are freed before the CM pass starts (peak memory = one student pass, not two);</li>
 *   <li>the CM term: one forward-mode pass (F, Ḟ) = JVP of (x, τ) ↦ F_θ(x, τ, y [, r]) at (x_t, t) along (v, 1) on a
 *       second tape (gradient through the primal only, §6.1), then {@link facm.tensor.TrainingOps#consistencyLoss}
 *       with the kind's coefficients: FACM k = 1 − t, α = 1 − t^p, elementwise clip, β = cos(πt/2), norm-L2 power 0.5;
 *       MeanFlow (auxiliary-time model, t ≤ r, r has zero tangent) k = r − t, α = β = 1, power 1; sCM
 *       k = (1 − t)·min(1, step/warmup), α = cos(πt/2), tangent normalization g/(rms(g) + 0.1), power 0 and
 *       weight 1 (the official sCM reproduction's learned weighting is commented out of its model, §5.7).</li>
 * </ul>
 * Total = mean_B L_CM + mean_B L_FM (FACM; the other kinds have no FM term). A non-finite total is returned as is:
 * the trainer then skips the update and counts it (§11.18), instead of the reference's "NaN → 0" that still lets NaN
 * gradients through.
 *
 * <p>Randomness is a pure function of (seed, step, sample index), see {@link TimeSampler} and
 * {@link FlowMatchingObjective#noise}, so a resumed run repeats the uninterrupted one exactly.
 */
public final class ConsistencyObjective implements Objective {

    /** The three objectives of §5 and §5.7 ({@code train --objective NAME}). */
    public enum Kind {
        FACM("facm"), SCM("scm"), MEANFLOW("meanflow");

        private final String id;

        Kind(String id) {
            this.id = id;
        }

        public String id() {
            return id;
        }

        public static Kind of(String id) {
            for (Kind k : values()) {
                if (k.id.equals(id)) {
                    return k;
                }
            }
            throw new IllegalArgumentException("unknown consistency objective '" + id + "' (facm, scm or meanflow)");
        }
    }

    /**
     * The hyper-parameters of §5.1 and §5.7, with the reference defaults in {@link #defaults}.
     *
     * @param timeSampler "default" (t = 1 − (2/π)·atan(e^n)) or "log" (t = 1 − sigmoid(n)), n ~ N(timeMean, timeStd²)
     * @param relaxP      p of the relaxation α(t) = 1 − t^p (FACM)
     * @param cfgScale    w of the guided teacher velocity; ≤ 1: no guidance
     * @param cfgLow      guidance only for cfgLow ≤ t ≤ cfgHigh
     * @param clip        elementwise clip of the FACM residual (≤ 0: none)
     * @param normEps     c of the norm-L2 weighting e / sg((e + c)^power)
     * @param scmWarmup   sCM tangent warm-up steps (ramp = min(1, step / warmup))
     * @param r2tRatio    MeanFlow: probability per sample that r = t
     */
    public record Options(Kind kind, String timeSampler, float timeMean, float timeStd, float relaxP, float cfgScale,
                          float cfgLow, float cfgHigh, float clip, float normEps, int scmWarmup, float r2tRatio) {
        public Options {
            String what = kind == null ? "consistency objective" : kind.id() + " objective";
            require(kind != null, what + ": kind is missing");
            require(TimeSampler.KINDS.contains(timeSampler), what + ": time sampler must be one of "
                    + TimeSampler.KINDS + ", got '" + timeSampler + "'");
            require(Float.isFinite(timeMean), what + ": time mean must be finite, got " + timeMean);
            require(timeStd > 0 && Float.isFinite(timeStd), what + ": time std must be > 0, got " + timeStd);
            require(relaxP > 0 && Float.isFinite(relaxP), what + ": relaxation exponent p must be > 0, got " + relaxP);
            require(cfgScale >= 0 && Float.isFinite(cfgScale), what + ": cfg scale must be >= 0, got " + cfgScale);
            require(cfgLow <= cfgHigh, what + ": cfg interval low " + cfgLow + " is above high " + cfgHigh);
            require(!Float.isNaN(clip), what + ": clip is NaN");
            require(normEps > 0 && Float.isFinite(normEps), what + ": norm-L2 constant must be > 0, got " + normEps);
            require(scmWarmup >= 0, what + ": sCM warm-up must be >= 0, got " + scmWarmup);
            require(r2tRatio >= 0 && r2tRatio <= 1, what + ": r2t ratio must be in [0, 1], got " + r2tRatio);
        }

        /** §5.1 and §5.7: default sampler N(−0.8, 1.6²), p 0.5, w 1.75 on [0.125, 1], clip 1, c 1e-3, warm-up 10k. */
        public static Options defaults(Kind kind) {
            return new Options(kind, "default", -0.8f, 1.6f, 0.5f, 1.75f, 0.125f, 1.0f, 1f, 1e-3f, 10_000, 0f);
        }

        /** These options as the constants of the device-side draws; nullClass &lt; 0: no unguided labels. */
        public ConsistencyDraws draws(int nullClass) {
            int k = switch (kind) {
                case FACM -> ConsistencyDraws.FACM;
                case SCM -> ConsistencyDraws.SCM;
                case MEANFLOW -> ConsistencyDraws.MEANFLOW;
            };
            return new ConsistencyDraws(k, timeSampler.equals("log"), timeMean, timeStd, relaxP, r2tRatio,
                    scmWarmup, cfgLow, cfgHigh, nullClass);
        }

        private static void require(boolean ok, String message) {
            if (!ok) {
                throw new IllegalArgumentException(message);
            }
        }
    }

    private final long seed;
    private final GemmPrecision precision;
    private final Options options;
    private final ModelWeights teacherWeights;
    private final TimeSampler times;
    private final TrainedModel trained;
    /** {@link #useDeviceInputs}: the fixed device buffers and step state of the per-step inputs; else null. */
    private DeviceStepInputs deviceInputs;
    private LightningDiT teacher;
    private Map<String, Double> lastMetrics = Map.of();

    /** {@code teacher} (may be null: no distillation, §5.2b) stays owned by the caller and is never written. */
    public ConsistencyObjective(long seed, GemmPrecision precision, Options options, ModelWeights teacher) {
        this.seed = seed;
        this.precision = precision;
        this.trained = new TrainedModel(precision);
        this.options = options;
        this.teacherWeights = teacher;
        this.times = new TimeSampler(options);
    }

    @Override
    public String name() {
        return options.kind().id();
    }

    public Options options() {
        return options;
    }

    @Override
    public float lossAndGradients(ModelWeights weights, Gradients grads, Batch batch, long step) {
        return lossAndGradients(weights, grads, batch, step, SampleSlice.whole(batch.size()));
    }

    /** A rank's slice: times and noise by global sample position (the loss has no other per-position rule). */
    @Override
    public float lossAndGradients(ModelWeights weights, Gradients grads, Batch batch, long step, SampleSlice slice) {
        LightningDiT s = trained.of(weights);
        LightningDiT t = teacherModel();
        requireCompatible(s, t);
        int b = batch.size();
        FlowMatchingObjective.requireSlice(slice, b);
        if (deviceInputs != null) {
            return lossOn(s, t, grads, deviceInputs.prepare(batch, seed, step, slice.first(),
                    options.draws(options.cfgScale() <= 1f ? -1 : nullClass(s, t)), weights.backend()));
        }
        TimeSampler.Draws d = times.draws(FlowMatchingObjective.stepKey(seed, step), slice.first(), b);
        Backend be = weights.backend();
        try (TensorScope scope = new TensorScope()) {
            Tensor x1 = scope.track(be.upload("x1", batch.images(), batch.shape()));
            Tensor eps = scope.track(be.empty("eps", DType.F32, batch.shape()));
            be.randomNormal(eps, FlowMatchingObjective.stepKey(seed, step),
                    FlowMatchingObjective.noiseOffset(eps, slice.first()));
            Tensor y = scope.track(be.upload("y", batch.labels(), b));
            return loss(s, t, grads, x1, eps, d.t(), d.r(), y, batch.labels(), step);
        }
    }

    /**
     * The deterministic core of one step (also what the reference-fixture test calls): x₁, ε {@code [B,C,H,W]};
     * t (host, per sample); r (host; MeanFlow only, t ≤ r; else null); y {@code [B]} I32 labels (stage 2 has no
     * label dropout). Accumulates the parameter gradients into {@code grads} (null: the loss only). Returns the total;
     * {@link #lastMetrics()} then holds loss_fm and loss_cm (batch means).
     */
    public float loss(LightningDiT student, LightningDiT teacher, Gradients grads, Tensor x1, Tensor eps, float[] t,
                      float[] r, Tensor y, long step) {
        return loss(student, teacher, grads, x1, eps, t, r, y, y.backend().downloadInts(y), step);
    }

    /** As above, with y's values on the host too (the training loop has them), so no device read is needed. */
    public float loss(LightningDiT student, LightningDiT teacher, Gradients grads, Tensor x1, Tensor eps, float[] t,
                      float[] r, Tensor y, int[] hostLabels, long step) {
        requireCompatible(student, teacher);
        Backend be = x1.backend();
        int b = x1.dim(0);
        if (t.length != b || (options.kind() == Kind.MEANFLOW) != (r != null) || (r != null && r.length != b)) {
            throw new IllegalArgumentException(name() + " objective: need t" + (options.kind() == Kind.MEANFLOW
                    ? " and r" : " (and no r)") + " for each of the " + b + " samples");
        }
        try (TensorScope s = new TensorScope()) {
            Tensor u = s.track(be.empty("u", DType.F32, x1.shape()));
            be.axpby(1f, x1, -1f, eps, u);
            Tensor xt = s.track(be.upload("x_t", perElement(t, x1), x1.shape()));
            be.binary(BinaryOp.MUL, xt, u, xt);
            be.binary(BinaryOp.ADD, xt, eps, xt);
            Tensor tT = s.track(be.upload("t", t, b));
            Tensor rT = r == null ? null : s.track(be.upload("r", r, b));
            Tensor coefs = s.track(be.upload("k,alpha,beta", coefficients(t, r, step), b, 3));
            Tensor yUnguided = options.cfgScale() <= 1f ? null : s.track(be.upload("y'",
                    TeacherVelocity.unguidedLabels(options, hostLabels, t, nullClass(student, teacher)), b));
            return lossOn(student, teacher, grads, new StepTensors(u, xt, tT, rT, coefs, y, yUnguided));
        }
    }

    /**
     * One step's inputs on the backend: u = x₁ − ε, x_t, t F32 [B], r (MeanFlow, else null), the coefficients F32
     * [B,3] (k, α, β), y I32 [B] and y' (the unguided labels; null without guidance). Made on the host from host
     * draws, or on the device ({@link DeviceStepInputs}); the loss reads them only.
     */
    record StepTensors(Tensor u, Tensor xt, Tensor t, Tensor r, Tensor coefs, Tensor y, Tensor yUnguided) {
    }

    /** The loss of one step's inputs (the part shared by the host and device inputs). */
    private float lossOn(LightningDiT student, LightningDiT teacher, Gradients grads, StepTensors in) {
        return lossOn(student, teacher, grads, in, null);
    }

    /**
     * As above; with {@code deviceLoss} (loss, step log, row count) the batch means go there through
     * {@link TrainingOps#stepLoss} instead of being read back (returns NaN then, and lastMetrics is not updated).
     */
    private float lossOn(LightningDiT student, LightningDiT teacher, Gradients grads, StepTensors in,
                         Tensor[] deviceLoss) {
        try (TensorScope s = new TensorScope()) {
            Tensor v = s.track(TeacherVelocity.velocity(options, student, teacher, in.xt(), in.u(), in.t(), in.y(),
                    in.yUnguided()));
            Tensor fm = options.kind() != Kind.FACM ? null
                    : s.track(ConsistencyPasses.anchorLoss(student, grads, in.xt(), in.t(), in.y(), v));
            Tensor cm = s.track(ConsistencyPasses.consistencyLoss(options, student, grads, in, v));
            Backend be = v.backend();
            if (deviceLoss != null) {
                be.training().stepLoss(fm, cm, deviceLoss[0], deviceLoss[1], deviceLoss[2]);
                return Float.NaN;
            }
            double lossFm = fm == null ? 0 : mean(be.download(fm));
            double lossCm = mean(be.download(cm));
            float total = (float) (lossCm + lossFm);
            Map<String, Double> m = new LinkedHashMap<>();
            m.put("loss_fm", lossFm);
            m.put("loss_cm", lossCm);
            lastMetrics = Map.copyOf(m);
            return total;
        }
    }

    @Override
    public void loadDeviceInputs(ModelWeights weights, Batch batch, long step) {
        if (deviceInputs == null) {
            throw new IllegalStateException(name() + " objective: loadDeviceInputs needs useDeviceInputs(true)");
        }
        LightningDiT s = trained.of(weights);
        LightningDiT t = teacherModel();
        requireCompatible(s, t);
        deviceInputs.load(batch, seed, step, 0, options.draws(options.cfgScale() <= 1f ? -1 : nullClass(s, t)),
                weights.backend());
    }

    @Override
    public void deviceLossAndGradients(ModelWeights weights, Gradients grads, Tensor loss, Tensor stepLog,
                                       Tensor logCount) {
        lossOn(trained.of(weights), teacherModel(), grads, deviceInputs.compute(),
                new Tensor[] {loss, stepLog, logCount});
    }

    /** loss_fm, loss_cm: the terms of {@link #deviceLossAndGradients} (loss_fm is 0 outside FACM, as on the host). */
    @Override
    public java.util.List<String> deviceLogTerms() {
        return java.util.List.of("loss_fm", "loss_cm");
    }

    /** The class index y' uses: the null class of the model that makes the unguided velocity. */
    private static int nullClass(LightningDiT student, LightningDiT teacher) {
        return (teacher != null ? teacher : student).config().numClasses();
    }

    /** Per sample (k, α, β) of {@link facm.tensor.TrainingOps#consistencyLoss}, computed in double. */
    float[] coefficients(float[] t, float[] r, long step) {
        float[] c = new float[3 * t.length];
        ConsistencyDraws formulas = options.draws(-1);
        for (int i = 0; i < t.length; i++) {
            formulas.coefficients(t, r, step, c, i);
        }
        return c;
    }

    /** The objective's model rules: MeanFlow needs the auxiliary time embedder (for r), sCM must not have it. */
    private void requireCompatible(LightningDiT s, LightningDiT t) {
        boolean aux = s.config().auxTime();
        if (options.kind() == Kind.MEANFLOW && !aux) {
            throw new IllegalArgumentException("meanflow objective: the student needs the auxiliary time embedder "
                    + "for r (train --aux-time)");
        }
        if (options.kind() == Kind.SCM && aux) {
            throw new IllegalArgumentException("scm objective: the student must not have the auxiliary time embedder");
        }
        if (t != null && (t.config().inChannels() != s.config().inChannels()
                || t.config().inputSize() != s.config().inputSize()
                || t.config().numClasses() != s.config().numClasses())) {
            throw new IllegalArgumentException(name() + " objective: teacher " + t.config().summary()
                    + " does not fit student " + s.config().summary() + " (input size, channels and classes differ)");
        }
    }

    /** t per sample, repeated over each sample's elements. */
    private static float[] perElement(float[] t, Tensor like) {
        int per = (int) (like.numel() / t.length);
        float[] out = new float[(int) like.numel()];
        for (int i = 0; i < t.length; i++) {
            java.util.Arrays.fill(out, i * per, (i + 1) * per, t[i]);
        }
        return out;
    }

    private static double mean(float[] v) {
        double sum = 0;
        for (float x : v) {
            sum += x;
        }
        return sum / v.length;
    }

    /**
     * Per-step inputs made on the device ({@code train --cuda-graph-step}): the batch copied into fixed buffers, times,
     * noise, x_t, coefficients and y' from Philox with the step in device memory ({@link DeviceStepInputs}). Same
     * values as the host path (bit for bit on the CPU).
     */
    @Override
    public boolean useDeviceInputs(boolean on) {
        if (!on && deviceInputs != null) {
            deviceInputs.close();
            deviceInputs = null;
        } else if (on && deviceInputs == null) {
            deviceInputs = new DeviceStepInputs();
        }
        return true;
    }

    /** Frees the teacher's cached bf16 weight copies (and the device inputs' buffers). */
    @Override
    public void close() {
        useDeviceInputs(false);
        if (teacher != null) {
            teacher.cacheBf16Weights(false);
        }
    }

    @Override
    public void checkpointBlocks(boolean on) {
        trained.checkpointBlocks(on);
    }

    @Override
    public Map<String, Double> lastMetrics() {
        return lastMetrics;
    }

    private LightningDiT teacherModel() {
        if (teacherWeights != null && teacher == null) {
            // The teacher is frozen: its bf16 weight copies are made once for the run, not in every teacher pass.
            teacher = new LightningDiT(teacherWeights).precision(precision).cacheBf16Weights(true);
        }
        return teacher;
    }
}
