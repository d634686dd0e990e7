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

    /** acc[0] += Σ x² (acc is F32 [1]; fp32 accumulation with a tree reduction, fp64 on the CPU). */
    void sumOfSquares(Tensor x, Tensor acc);

    /**
     * Decoupled-weight-decay Adam (PyTorch AdamW) on one tensor, with the gradient multiplied by {@code gradScale}
     * first (gradient clipping): g = gradScale·grad; p ← p − lr·wd·p; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
     * p ← p − lr·(m / (1−β1^step)) / (√(v / (1−β2^step)) + eps). {@code step} counts from 1.
     */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
               float weightDecay, int step, float gradScale);
}
