package facm.tensor;

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
        Backend be = control.backend();
        double norm = Math.sqrt(be.download(sumSquares)[0]);
        float lossValue = be.download(loss)[0];
        boolean skip = !Float.isFinite(lossValue) || !Double.isFinite(norm);
        float clip = maxNorm > 0 ? (float) Math.min(1.0, maxNorm / (norm + 1e-6)) : 1f;
        Tensor values = be.upload("control", new float[] {clip, skip ? 1f : 0f}, control.shape());
        try {
            be.copy(values, control);
        } finally {
            values.close();
        }
    }

    /**
     * {@link #adamw} with its step-dependent inputs on the device: nothing happens when control[SKIP] is set; else
     * gradScale = control[CLIP] and the bias corrections of step k = counter[0] + 1 come from
     * {@code biasCorrections} (fp64 pairs (1 − β1^k, 1 − β2^k) at index k, see {@link #CONTROL_SIZE}'s note). Does not
     * advance the counter ({@link #advanceCounter} does, once per step, after every tensor is updated).
     */
    default void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                       float weightDecay, Tensor biasCorrections, Tensor counter, Tensor control) {
        Backend be = control.backend();
        float[] c = be.download(control);
        if (c[CONTROL_SKIP] != 0f) {
            return;
        }
        int step = Math.addExact(be.downloadInts(counter)[0], 1);
        int[] words = be.downloadInts(biasCorrections);
        if (2L * (2L * step + 1) + 1 >= words.length) {
            throw new IllegalArgumentException("adamw: step " + step + " is past the bias-correction table "
                    + biasCorrections.describe());
        }
        double bc1 = fp64At(words, 2 * step), bc2 = fp64At(words, 2 * step + 1);
        if (bc1 != 1.0 - Math.pow(beta1, step) || bc2 != 1.0 - Math.pow(beta2, step)) {
            throw new IllegalArgumentException("adamw: the bias-correction table " + biasCorrections.describe()
                    + " was not made for beta1 " + beta1 + ", beta2 " + beta2 + " (step " + step + ")");
        }
        adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, c[CONTROL_CLIP]);
    }

    /**
     * One EMA update on the device's scalars: nothing when control[SKIP] is set; else with β = {@code decays}[k], k =
     * counter[0] + 1 (an fp64 table), average ← θ when β = 0, else average ← (float) β·average + (float) (1 − β)·θ
     * exactly as {@link Backend#axpby} with those two floats.
     */
    default void emaUpdate(Tensor average, Tensor theta, Tensor decays, Tensor counter, Tensor control) {
        Backend be = control.backend();
        if (be.download(control)[CONTROL_SKIP] != 0f) {
            return;
        }
        int k = Math.addExact(be.downloadInts(counter)[0], 1);
        int[] words = be.downloadInts(decays);
        if (2L * k + 1 >= words.length) {
            throw new IllegalArgumentException("emaUpdate: update " + k + " is past the decay table "
                    + decays.describe());
        }
        double beta = fp64At(words, k);
        if (beta == 0) {
            be.copy(theta, average);
        } else {
            be.axpby((float) beta, average, (float) (1.0 - beta), theta, average);
        }
    }

    /** counter[0] += 1 unless control[SKIP] is set (an applied step; skipped steps do not count, as in PyTorch). */
    default void advanceCounter(Tensor counter, Tensor control) {
        Backend be = control.backend();
        if (be.download(control)[CONTROL_SKIP] != 0f) {
            return;
        }
        int[] c = be.downloadInts(counter);
        c[0] = Math.addExact(c[0], 1);
        Tensor next = be.upload("counter", c, counter.shape());
        try {
            be.copy(next, counter);
        } finally {
            next.close();
        }
    }

    /** The fp64 value at index i of a table of I32 word pairs (low word first). */
    static double fp64At(int[] words, int i) {
        long low = words[2 * i] & 0xffffffffL, high = words[2 * i + 1];
        return Double.longBitsToDouble((high << 32) | low);
    }
}
