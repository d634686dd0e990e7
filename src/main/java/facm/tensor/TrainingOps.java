package facm.tensor;

import java.util.List;

/**
 * Losses and optimizer steps as backend ops ({@code backend.training()}), defined once and implemented by every
 * backend. All F32. Scalars that decide control flow (the global gradient norm) are read back by the caller once per
 * step; everything else stays on the device.
 */
public interface TrainingOps {

    /**
     * Flow-matching loss per sample (facm-spec.md §4, §5.2c): for pred and target {@code [B,C,H,W]},
     * ℓ_b = mean_{C,H,W}(pred − target)² + mean_{H,W}(1 − cos_C(pred, target)), with
     * cos_C(p, u) = p·u / (max(‖p‖, 1e-8)·max(‖u‖, 1e-8)) over the C channels at each pixel. Writes perSample {@code [B]}.
     * When {@code gradPred} is non-null it is OVERWRITTEN with ∂(Σ_b weight_b·ℓ_b)/∂pred, where weight_b =
     * {@code gradScale} (a scalar; e.g. 1/B for a batch mean). Sums in fp32 or better.
     */
    void flowMatchingLoss(Tensor pred, Tensor target, Tensor perSample, Tensor gradPred, float gradScale);

    /**
     * The consistency losses of facm-spec.md §5.2d and §5.7 (FACM, MeanFlow, sCM), one op for all three. Inputs
     * {@code [B,C,H,W]}: pred = F (the primal of the JVP pass; only its VALUE enters the target, as F̄ = sg(F)),
     * tangent = Ḟ (stop-gradient), velocity = v; coefs F32 {@code [B,3]} holds per sample (k_b, α_b, β_b). Per sample b
     * and element i (N = C·H·W elements per sample):
     * <pre>
     *   D_i = F̄_i − (v_i + k_b·Ḟ_i)                    residual of the target (FACM: k = 1 − t; MeanFlow: k = r − t;
     *                                                  sCM: k = (1 − t)·warm-up ramp)
     *   Δ_i = α_b·clip(D_i, −clip, clip)                clip ≤ 0 or infinite: no clip (FACM: clip 1, α = 1 − t^p)
     *   if normEps &gt; 0: Δ_i ← Δ_i / (rms_b(Δ) + normEps)   sCM's tangent normalization (rms over the N elements)
     *   target_i = F̄_i − Δ_i,  e_b = mean_i (F_i − target_i)² = mean_i Δ_i²
     *   L_b = β_b · e_b / (e_b + weightEps)^weightPower  (denominator stop-gradient; FACM 0.5, MeanFlow 1, sCM 0)
     * </pre>
     * Writes perSample {@code [B]} = L_b. When {@code gradPred} is non-null it is OVERWRITTEN with
     * ∂(Σ_b gradScale·L_b)/∂F = gradScale·β_b/(e_b + weightEps)^weightPower · 2Δ_i/N (the target held fixed).
     * Sums in fp32 or better.
     */
    void consistencyLoss(Tensor pred, Tensor tangent, Tensor velocity, Tensor coefs, float clip, float normEps,
                         float weightPower, float weightEps, Tensor perSample, Tensor gradPred, float gradScale);

    /**
     * Softmax cross-entropy per row (a classifier's loss): for logits {@code [B,K]} and I32 labels {@code [B]}, each in
     * [0, K), writes perSample {@code [B]} = ℓ_b = logsumexp_k(z_bk) − z_{b,y_b} (computed stably around the row max).
     * When {@code gradLogits} is non-null it is OVERWRITTEN with ∂(Σ_b gradScale·ℓ_b)/∂z = gradScale·(softmax(z_b) −
     * onehot(y_b)) (e.g. gradScale = 1/B for a batch mean). A label outside [0, K) is an
     * {@link IllegalArgumentException} naming the row (CUDA reads the labels back to check them: one small
     * synchronizing copy). Sums in fp64 (both backends). Both backends implement it; the default only keeps
     * test doubles of this interface that have no use for it compiling.
     */
    default void softmaxCrossEntropy(Tensor logits, Tensor labels, Tensor perSample, Tensor gradLogits,
                                     float gradScale) {
        throw new UnsupportedOperationException(getClass().getSimpleName() + " does not implement softmaxCrossEntropy");
    }

    /** acc[0] += Σ x² (acc is F32 [1]; fp32 accumulation with a tree reduction, fp64 on the CPU). */
    void sumOfSquares(Tensor x, Tensor acc);

    /**
     * Decoupled-weight-decay Adam (PyTorch AdamW) on one tensor, with the gradient multiplied by {@code gradScale}
     * first (gradient clipping): g = gradScale·grad; p ← p − lr·wd·p; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
     * p ← p − lr·(m / (1−β1^step)) / (√(v / (1−β2^step)) + eps). {@code step} counts from 1.
     */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
               float weightDecay, int step, float gradScale);

    // ------------------------------------------------------------------ device-resident step control
    // The forms below let a whole training step run without a host decision (a CUDA graph replays it): the clip
    // factor and the skip flag live in a device "control" tensor, the update counters in device I32 tensors, and the
    // per-step fp64 constants (AdamW's bias corrections, the EMAs' decays) in tables indexed by counter + 1, computed
    // once on the host with the very expressions of the host forms. Tables hold fp64 values as pairs of I32 words
    // (low word first; the tensor dtypes have no F64): see facm.training.Fp64Table. The defaults are the reference:
    // they read the scalars back and call the host forms above, so every backend (and test double) has them; the CUDA
    // backend replaces them by kernels that read the scalars on the device and are bit-identical to the defaults.
    // The defaults' bodies are in HostStepControl.

    /** Floats in a control tensor: [CLIP] the gradient factor, [SKIP] 1 when the step must not be applied, else 0. */
    int CONTROL_SIZE = 2;
    int CONTROL_CLIP = 0;
    int CONTROL_SKIP = 1;

    /**
     * Writes control (F32 [{@link #CONTROL_SIZE}]) from the accumulated Σg² (F32 [1]) and the step's loss (F32 [1]):
     * with norm = √(double) Σg² (fp64, correctly rounded), clip = (float) min(1, maxNorm / (norm + 1e-6)) when
     * maxNorm &gt; 0, else 1 (torch's clip_grad_norm_); skip = 1 when the loss or the norm is not finite.
     */
    default void stepControl(Tensor sumSquares, Tensor loss, float maxNorm, Tensor control) {
        HostStepControl.stepControl(sumSquares, loss, maxNorm, control);
    }

    /**
     * {@link #adamw} with its step-dependent inputs on the device: nothing happens when control[SKIP] is set; else
     * gradScale = control[CLIP] and the bias corrections of step k = counter[0] + 1 come from
     * {@code biasCorrections} (fp64 pairs (1 − β1^k, 1 − β2^k) at index k, see {@link #CONTROL_SIZE}'s note). Does not
     * advance the counter ({@link #advanceCounter} does, once per step, after every tensor is updated).
     */
    default void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                       float weightDecay, Tensor biasCorrections, Tensor counter, Tensor control) {
        HostStepControl.adamw(this, param, grad, m, v, lr, beta1, beta2, eps, weightDecay, biasCorrections, counter,
                control);
    }

    /**
     * One EMA update on the device's scalars: nothing when control[SKIP] is set; else with β = {@code decays}[k], k =
     * counter[0] + 1 (an fp64 table), average ← θ when β = 0, else average ← (float) β·average + (float) (1 − β)·θ
     * exactly as {@link Backend#axpby} with those two floats.
     */
    default void emaUpdate(Tensor average, Tensor theta, Tensor decays, Tensor counter, Tensor control) {
        HostStepControl.emaUpdate(average, theta, decays, counter, control);
    }

    /** counter[0] += 1 unless control[SKIP] is set (an applied step; skipped steps do not count, as in PyTorch). */
    default void advanceCounter(Tensor counter, Tensor control) {
        HostStepControl.advanceCounter(counter, control);
    }

    // ------------------------------------------------------------------ foreach (multi-tensor) forms
    // One call per optimizer phase over lists of tensors (element i of every list belongs together). Each is defined
    // as its per-tensor op applied to the tensors in list order, which the defaults do (ForeachLoops); the CUDA
    // backend overrides them with one launch per phase (facm.backend.cuda.CudaForeach), bit-identical to those
    // per-tensor calls.

    /** {@link #adamw(Tensor, Tensor, Tensor, Tensor, float, float, float, float, float, int, float)} per tensor. */
    default void adamwForeach(List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs, float lr,
                              float beta1, float beta2, float eps, float weightDecay, int step, float gradScale) {
        ForeachLoops.adamw(this, params, grads, ms, vs, lr, beta1, beta2, eps, weightDecay, step, gradScale);
    }

    /** The device-step {@link #adamw(Tensor, Tensor, Tensor, Tensor, float, float, float, float, float, Tensor,
     * Tensor, Tensor)} per tensor (the counter is not advanced). */
    default void adamwForeach(List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs, float lr,
                              float beta1, float beta2, float eps, float weightDecay, Tensor biasCorrections,
                              Tensor counter, Tensor control) {
        ForeachLoops.adamw(this, params, grads, ms, vs, lr, beta1, beta2, eps, weightDecay, biasCorrections, counter,
                control);
    }

    /**
     * The host-scalar EMA update per tensor pair: average ← θ ({@link Backend#copy}) when decay is 0, else
     * {@link Backend#axpby}((float) decay, average, (float) (1 − decay), θ, average).
     */
    default void emaUpdateForeach(List<Tensor> averages, List<Tensor> thetas, double decay) {
        ForeachLoops.emaUpdate(averages, thetas, decay);
    }

    /** The device-step {@link #emaUpdate} per tensor pair (the counter is not advanced). */
    default void emaUpdateForeach(List<Tensor> averages, List<Tensor> thetas, Tensor decays, Tensor counter,
                                  Tensor control) {
        ForeachLoops.emaUpdate(this, averages, thetas, decays, counter, control);
    }

    /** {@link #sumOfSquares} per tensor, in list order, into one accumulator. */
    default void sumOfSquaresForeach(List<Tensor> xs, Tensor acc) {
        ForeachLoops.sumOfSquares(this, xs, acc);
    }

    /** Every tensor (F32) filled with 0 ({@link Backend#fill}). */
    default void zeroForeach(List<Tensor> tensors) {
        ForeachLoops.zero(tensors);
    }

    // ------------------------------------------------------------------ device-resident per-step inputs
    // A consistency step's random inputs (times, noise, x_t, coefficients, the unguided labels) computed where the
    // step runs, from Philox keyed by a step state held in device memory (I32 [STEP_STATE_SIZE]: seed low/high word,
    // step low/high word) and advanced there, so a replayed CUDA graph sees a new step each time. The defaults are the
    // reference (host reads, the formulas of ConsistencyDraws); the CUDA backend overrides them with kernels.

    /** I32 words of a step state: seed (low, high), step (low, high). */
    int STEP_STATE_SIZE = 4;

    /**
     * The per-sample inputs of the step in {@code stepState} for the B samples at global positions first, first + 1,
     * …: t F32 [B], r F32 [B] (MeanFlow, else null), coefs F32 [B,3] (k, α, β), and when {@code yUnguided} (I32 [B]) is
     * non-null the unguided labels from y (I32 [B]); all as {@link ConsistencyDraws}, bit for bit on the CPU.
     */
    default void consistencyDraws(ConsistencyDraws d, Tensor stepState, int first, Tensor t, Tensor r, Tensor coefs,
                                  Tensor y, Tensor yUnguided) {
        Backend be = t.backend();
        long[] state = stepStateOf(be, stepState);
        long key = ConsistencyDraws.stepKey(state[0], state[1]);
        int b = t.dim(0);
        if ((r != null) != (d.kind() == ConsistencyDraws.MEANFLOW)) {
            throw new IllegalArgumentException("consistencyDraws: r must be given exactly for meanflow, kind "
                    + d.kind());
        }
        float[] tv = new float[b];
        float[] rv = r != null ? new float[b] : null;
        float[] c = new float[3 * b];
        for (int i = 0; i < b; i++) {
            d.times(key, first + (long) i, tv, rv, i);
            d.coefficients(tv, rv, state[1], c, i);
        }
        overwrite(be, "t", tv, t);
        if (r != null) {
            overwrite(be, "r", rv, r);
        }
        overwrite(be, "coefs", c, coefs);
        if (yUnguided != null) {
            int[] labels = be.downloadInts(y);
            for (int i = 0; i < b; i++) {
                labels[i] = d.unguidedLabel(labels[i], tv[i]);
            }
            Tensor host = be.upload("y'", labels, yUnguided.shape());
            try {
                be.copy(host, yUnguided);
            } finally {
                host.close();
            }
        }
    }

    /**
     * The noise and the interpolation of the step in {@code stepState}: eps[j] = Philox normal (stepKey, offset + j),
     * u = x1 − eps, x_t = (t_b·u) + eps in float (two roundings, as the host path's MUL then ADD), for x1 [B,…] and
     * t F32 [B]. eps, u and xt have x1's shape.
     */
    default void consistencyNoise(Tensor stepState, long offset, Tensor x1, Tensor t, Tensor eps, Tensor u,
                                  Tensor xt) {
        Backend be = x1.backend();
        long[] state = stepStateOf(be, stepState);
        be.randomNormal(eps, ConsistencyDraws.stepKey(state[0], state[1]), offset);
        float[] x = be.download(x1);
        float[] e = be.download(eps);
        float[] tv = be.download(t);
        int per = (int) (x.length / tv.length);
        float[] uv = new float[x.length];
        float[] xv = new float[x.length];
        for (int j = 0; j < x.length; j++) {
            uv[j] = x[j] - e[j];
            xv[j] = tv[j / per] * uv[j] + e[j];
        }
        overwrite(be, "u", uv, u);
        overwrite(be, "x_t", xv, xt);
    }

    /** stepState's step += 1 (every step, applied or skipped: the objective's randomness is keyed by the loop step). */
    default void advanceStepState(Tensor stepState) {
        Backend be = stepState.backend();
        long[] s = stepStateOf(be, stepState);
        Tensor next = be.upload("step state", stepStateWords(s[0], s[1] + 1), STEP_STATE_SIZE);
        try {
            be.copy(next, stepState);
        } finally {
            next.close();
        }
    }

    /**
     * Copies host values into an existing tensor of as many F32 elements (one copy; the CUDA backend stages them
     * through pinned memory and queues an asynchronous copy, so the fixed buffers of a captured step are refilled
     * without a new allocation). The host array may be reused as soon as this returns.
     */
    default void copyIn(float[] host, Tensor dst) {
        Backend be = dst.backend();
        Tensor src = be.upload(dst.name(), host, dst.shape());
        try {
            be.copy(src, dst);
        } finally {
            src.close();
        }
    }

    /** As above for I32 values. */
    default void copyIn(int[] host, Tensor dst) {
        Backend be = dst.backend();
        Tensor src = be.upload(dst.name(), host, dst.shape());
        try {
            be.copy(src, dst);
        } finally {
            src.close();
        }
    }

    // ------------------------------------------------------------------ device-resident step log
    // The numbers a metrics line averages, kept on the device per step and read only at log steps: a step log is I32
    // [capacity · 2 · STEP_LOG_VALUES] (rows of fp64 word pairs, as the tables above) with an I32 [1] row count.

    /** Objective terms per row (e.g. loss_fm, loss_cm). */
    int STEP_LOG_TERMS = 2;
    /** fp64 values per row: loss (the step's float total), gradient norm, skip (0 or 1), then the terms. */
    int STEP_LOG_VALUES = 3 + STEP_LOG_TERMS;
    int LOG_LOSS = 0;
    int LOG_NORM = 1;
    int LOG_SKIP = 2;
    int LOG_TERMS = 3;

    /**
     * An objective's step total on the device: each term is the batch mean of a per-sample F32 [B] tensor (null: 0),
     * summed in double in index order and divided by B (a host mean of the downloaded floats); loss[0] (F32 [1]) =
     * (float) (term0 + term1), and row logCount[0] of stepLog gets the loss and the terms (the count is not advanced:
     * {@link #stepLogEnd} does, after the update).
     */
    default void stepLoss(Tensor term0, Tensor term1, Tensor loss, Tensor stepLog, Tensor logCount) {
        Backend be = loss.backend();
        double a = term0 == null ? 0 : meanOf(be.download(term0));
        double b = term1 == null ? 0 : meanOf(be.download(term1));
        float total = (float) (a + b);
        overwrite(be, "loss", new float[] {total}, loss);
        int row = be.downloadInts(logCount)[0];
        int[] words = be.downloadInts(stepLog);
        if ((row + 1L) * 2 * STEP_LOG_VALUES <= words.length) {
            putFp64(words, row * STEP_LOG_VALUES + LOG_LOSS, total);
            putFp64(words, row * STEP_LOG_VALUES + LOG_TERMS, a);
            putFp64(words, row * STEP_LOG_VALUES + LOG_TERMS + 1, b);
            copyIn(words, stepLog);
        }
    }

    /**
     * Completes row logCount[0] after the update and advances the count: norm = √(double) Σg² (sumSquares F32 [1]),
     * NaN when the row's loss is not finite (the norm is then not computed on the host path), and skip =
     * control[SKIP]. A row past the log's capacity is not written but still counted (the reader reports it).
     */
    default void stepLogEnd(Tensor sumSquares, Tensor control, Tensor stepLog, Tensor logCount) {
        Backend be = control.backend();
        int row = be.downloadInts(logCount)[0];
        int[] words = be.downloadInts(stepLog);
        if ((row + 1L) * 2 * STEP_LOG_VALUES <= words.length) {
            double loss = fp64At(words, row * STEP_LOG_VALUES + LOG_LOSS);
            double norm = Double.isFinite(loss) ? Math.sqrt(be.download(sumSquares)[0]) : Double.NaN;
            putFp64(words, row * STEP_LOG_VALUES + LOG_NORM, norm);
            putFp64(words, row * STEP_LOG_VALUES + LOG_SKIP, be.download(control)[CONTROL_SKIP] != 0f ? 1 : 0);
            copyIn(words, stepLog);
        }
        copyIn(new int[] {Math.addExact(row, 1)}, logCount);
    }

    private static double meanOf(float[] v) {
        double sum = 0;
        for (float x : v) {
            sum += x;
        }
        return sum / v.length;
    }

    private static void putFp64(int[] words, int i, double value) {
        long bits = Double.doubleToRawLongBits(value);
        words[2 * i] = (int) bits;
        words[2 * i + 1] = (int) (bits >>> 32);
    }

    /** The I32 words of a step state for (seed, step). */
    static int[] stepStateWords(long seed, long step) {
        return new int[] {(int) seed, (int) (seed >>> 32), (int) step, (int) (step >>> 32)};
    }

    /** (seed, step) of a step state (one host read). */
    static long[] stepStateOf(Backend be, Tensor stepState) {
        if (stepState.dtype() != DType.I32 || stepState.numel() != STEP_STATE_SIZE) {
            throw new ShapeException("step state " + stepState.describe() + " must be I32 [" + STEP_STATE_SIZE + "]");
        }
        int[] w = be.downloadInts(stepState);
        return new long[] {(w[0] & 0xffffffffL) | ((long) w[1] << 32), (w[2] & 0xffffffffL) | ((long) w[3] << 32)};
    }

    private static void overwrite(Backend be, String name, float[] values, Tensor out) {
        Tensor host = be.upload(name, values, out.shape());
        try {
            be.copy(host, out);
        } finally {
            host.close();
        }
    }

    /** The fp64 value at index i of a table of I32 word pairs (low word first). */
    static double fp64At(int[] words, int i) {
        long low = words[2 * i] & 0xffffffffL, high = words[2 * i + 1];
        return Double.longBitsToDouble((high << 32) | low);
    }
}
