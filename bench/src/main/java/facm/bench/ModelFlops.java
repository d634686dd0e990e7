package facm.bench;

import facm.model.ModelConfig;

/**
 * FLOP counts of the LightningDiT work the benchmarks time, from the config alone (matrix products and attention;
 * norms, activations and elementwise ops are bandwidth work and not counted). With T tokens, D = hidden, F = SwiGLU
 * width, P = C·p² features per patch, 256 time features, per image:
 * <pre>
 *   forward = 2·T·P·D                          patch embedding
 *           + 2·(256·D + D·D)·(1 + aux)         time MLP (and the auxiliary r MLP), once per image
 *           + depth·[ 2·D·6D                    adaLN modulation, once per image
 *                   + 2·T·(4·D² + 3·D·F)        qkv 3D², proj D², w12 2DF, w3 FD
 *                   + 4·T²·D ]                  attention: QKᵀ and PV, 2·T²·dh each, over H heads
 *           + 2·D·2D + 2·T·D·P                  final adaLN and output linear
 * </pre>
 * XL/1 (T 256, D 1152, F 3072, depth 28, P 32): 28·(8.154 + 0.302 + 0.016) GFLOP + 0.04 GFLOP ≈ 237.3 GFLOP, the
 * ~237 GFLOP per image of platform.md; B/1 (D 768, F 2048, depth 12): ≈ 46.0 GFLOP.
 */
final class ModelFlops {
    /**
     * Nominal forward-equivalents of one FACM distillation step per sample (facm-spec.md §5.2): two teacher forwards
     * (conditional and unguided, CFG), the FM anchor (forward + backward = 3), the JVP pass (primal 1 + tangent 1 +
     * backward of the primal 2 = 4). The tangent's attention costs more than a forward's (12 vs 4·T²·dh per head, see
     * AttentionBenchmark), which this nominal count leaves out, as PyTorch-side counts do.
     */
    static final int FACM_STEP_FORWARDS = 9;
    /** An FM training step: forward + backward (2× the forward's products). */
    static final int FM_STEP_FORWARDS = 3;

    private ModelFlops() {
    }

    static double forwardPerImage(ModelConfig c) {
        double t = c.tokens();
        double d = c.hidden();
        double f = c.mlpHidden();
        double p = c.patchFeatures();
        double timeMlp = 2.0 * (ModelConfig.TIME_FEATURES * d + d * d) * (c.auxTime() ? 2 : 1);
        double block = 2.0 * d * 6 * d + 2.0 * t * (4 * d * d + 3 * d * f) + 4.0 * t * t * d;
        return 2.0 * t * p * d + timeMlp + c.depth() * block + 2.0 * d * 2 * d + 2.0 * t * d * p;
    }
}
