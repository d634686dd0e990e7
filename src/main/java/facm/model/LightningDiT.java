package facm.model;

import facm.autograd.CheckpointedBlock;
import facm.autograd.Dual;
import facm.autograd.DualPass;
import facm.autograd.ForwardPass;
import facm.autograd.LayerOps;
import facm.autograd.Tape;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

/**
 * The LightningDiT forward pass F_θ(x, τ, y [, r]) of facm-spec.md §3.2, written once against {@link LayerOps} (run
 * by a {@link ForwardPass} or a {@link DualPass}, and through them {@link Backend} and {@link facm.tensor.NetworkOps}),
 * so the same code runs on CPU and CUDA, for inference, for training and in forward mode. Inputs: x {@code [B,C,H,W]}, τ {@code [B]} (used as given: t ∈ [0,1]
 * for the CM task, 2 − t for the FM task), y {@code [B]} I32 labels (null class = numClasses), and r {@code [B]} only
 * when the config has the auxiliary time embedder. Output {@code [B,C,H,W]}.
 *
 * <p>Training: {@link #forward(Tensor, Tensor, Tensor, Tensor, Tape)} records the backward of every op on the tape;
 * gradients reach the parameters the tape tracks (x, τ, y and r get none). What the tape holds until the backward,
 * per block, in units of one fp32 activation {@code [B,T,D]} (F = SwiGLU width, F/D ≈ 2.67): the block input and the
 * mid-block residual stream (2: RMSNorm inputs, new tensors because under a tape the stream is not updated in place),
 * the normed activations feeding qkv and w12 (2), qkv (3), q/k/v (3), the attention output (1), the two branch
 * outputs the gates multiply (2), w12's output (2F/D) and the SwiGLU output (F/D): 13 + 3F/D = 21, plus per-row
 * statistics (RMS factors, log-sum-exp) and the [B, 6D] modulation. In BF16 the linears keep bf16 casts of their
 * inputs instead (the normed activations and the SwiGLU output at half size; the attention output's cast comes on
 * top of its fp32 original, which the attention backward reads): 12.5 + 2.5F/D ≈ 19.2, plus the bf16 copies of the
 * weights (2 bytes per parameter). XL/1 at batch 32: one unit is 37.7 MB, so ~0.79 GB per block and ~22 GB for the
 * 28 blocks in FP32, ~20 GB + 1.35 GB of bf16 weights in BF16 (ActivationMemoryTest checks the account). Attention
 * probabilities are never stored: the backward recomputes them from the saved log-sum-exp.
 *
 * <p>Forward mode: {@link #jvp} runs the same layers on a {@link DualPass} (primal and tangent together). The four
 * stages {@link #embedPatches}, {@link #conditioning}, {@link #block} and {@link #finalLayer} are written once against
 * {@link LayerOps}, generic over the pass's value (a {@link Tensor} on a {@link ForwardPass}, a {@link Dual} on a
 * {@link DualPass}), so inference, training and the JVP share one spelling of the network.
 */
public final class LightningDiT {
    private final ModelWeights w;
    private final ModelConfig c;
    private final Backend be;
    private GemmPrecision precision = GemmPrecision.FP32;
    private boolean bf16Activations = true;
    private boolean bf16Operands = true;
    /** Used only where the backend's attention takes bf16 q, k, v; see {@link #bf16Attention}. */
    private boolean bf16Attention = !"false".equalsIgnoreCase(System.getProperty("facm.bf16Attention", "true"));
    private boolean checkpointBlocks;
    private boolean chainBlocks = true;
    private Bf16WeightCache weightCache;

    public LightningDiT(ModelWeights weights) {
        this.w = weights;
        this.c = weights.config();
        this.be = weights.backend();
    }

    public ModelConfig config() {
        return c;
    }

    public ModelWeights weights() {
        return w;
    }

    /**
     * FP32 (default) or TF32 products on the fp32 weights, or BF16 mixed precision (weights and activations cast to
     * bf16 right before each GEMM, fp32 accumulation and everything else in fp32).
     */
    public LightningDiT precision(GemmPrecision p) {
        this.precision = p;
        return this;
    }

    public GemmPrecision precision() {
        return precision;
    }

    /**
     * Whether a tape-less BF16 {@link #forward(Tensor, Tensor, Tensor, Tensor, Tape)} (inference, a frozen teacher)
     * keeps the activations between GEMM-bound ops in bf16 (default on; see {@link ForwardPass#bf16Inference}). With
     * a tape, in FP32/TF32 and in forward mode the activations are always f32.
     */
    public LightningDiT bf16Activations(boolean on) {
        this.bf16Activations = on;
        return this;
    }

    /**
     * Whether BF16 passes hand bf16 q, k, v to the backend's attention where it takes them
     * ({@link facm.tensor.NetworkOps#attentionTakes}): the tape-less bf16-activation forward, and the training and
     * forward-mode passes ({@link ForwardPass.Bf16Training#attention}: attention, its backward and JVP on bf16 heads,
     * which changes numerics). Default on, unless system property {@code facm.bf16Attention=false}; off, or where the
     * backend has no bf16 attention, qkNormRope writes f32 heads for the f32 attention.
     */
    public LightningDiT bf16Attention(boolean on) {
        this.bf16Attention = on;
        return this;
    }

    /**
     * Whether BF16 passes with a tape, and forward-mode passes, write the bf16 GEMM operands directly (norms and
     * swiglu; {@link ForwardPass.Bf16Training#operands}): the same bits as casting in the linear, so losses and
     * gradients do not change (default on; off is the reference the tests compare with).
     */
    public LightningDiT bf16Operands(boolean on) {
        this.bf16Operands = on;
        return this;
    }

    /**
     * Activation checkpointing (the train flag {@code --checkpoint-blocks}): a forward with a tape keeps only each
     * block's input (and the shared conditioning) for the backward and recomputes the block's forward, with a tape of
     * its own, when the backward reaches it ({@link CheckpointedBlock}). Same gradients, about one more
     * forward of compute, and the saved activations of one block instead of all. Forward-mode passes
     * ({@link #jvp}) are not checkpointed.
     */
    public LightningDiT checkpointBlocks(boolean on) {
        this.checkpointBlocks = on;
        return this;
    }

    public boolean checkpointBlocks() {
        return checkpointBlocks;
    }

    /**
     * Whether tape-less passes run the blocks chained ({@link ChainedBlocks}: the next modulation computed first,
     * every gate_m residual fused with the next norm; default on) or as the {@link #block} loop that passes with a
     * tape run. The same values either way; off is the reference the tests compare the chaining with.
     */
    public LightningDiT chainBlocks(boolean on) {
        this.chainBlocks = on;
        return this;
    }

    /**
     * Keeps the bf16 copies of the weights across tape-less BF16 passes ({@link Bf16WeightCache}) instead of casting
     * them in every pass. Only for weights that do not change, or call {@link #invalidateBf16Weights()} after every
     * in-place update. Off frees the copies.
     */
    public LightningDiT cacheBf16Weights(boolean on) {
        if (on && weightCache == null) {
            weightCache = new Bf16WeightCache(be);
        } else if (!on && weightCache != null) {
            weightCache.close();
            weightCache = null;
        }
        return this;
    }

    /** Drops the cached bf16 weight copies (after the weights were updated in place); a no-op without a cache. */
    public void invalidateBf16Weights() {
        if (weightCache != null) {
            weightCache.invalidate();
        }
    }

    /** The pass a forward on {@code tape} runs on. */
    private ForwardPass pass(Tape tape) {
        if (precision != GemmPrecision.BF16 || (tape == null && !bf16Activations)) {
            return new ForwardPass(be, precision, tape);
        }
        if (tape == null) {
            return ForwardPass.bf16Inference(be, new ForwardPass.Bf16Forms(useBf16Attention(),
                    java.util.Set.of(w.get("final_layer.linear.weight")), weightCache));
        }
        ForwardPass.Bf16Training forms = trainingForms();
        return forms == null ? new ForwardPass(be, precision, tape) : ForwardPass.bf16Training(be, tape, forms);
    }

    /** The bf16 forms of a BF16 pass with a tape or in forward mode, or null (f32 activations, casts in the linears). */
    private ForwardPass.Bf16Training trainingForms() {
        boolean attention = useBf16Attention();
        return bf16Operands || attention ? new ForwardPass.Bf16Training(bf16Operands, attention) : null;
    }

    private boolean useBf16Attention() {
        return bf16Attention && be.network().attentionTakes(DType.BF16);
    }

    public Tensor forward(Tensor x, Tensor t, Tensor y) {
        return forward(x, t, y, null);
    }

    /** Inference: the output is the caller's; every temporary is freed before this returns. */
    public Tensor forward(Tensor x, Tensor t, Tensor y, Tensor r) {
        return forward(x, t, y, r, null);
    }

    /**
     * The forward pass recording its backward on {@code tape} (null: inference). The output is the caller's to
     * close; seed the backward with {@code tape.backward(output, dLoss/dOutput)}. x, t, y and r must stay open until
     * the backward has run.
     */
    public Tensor forward(Tensor x, Tensor t, Tensor y, Tensor r, Tape tape) {
        checkInputs(x, t, y, r);
        try (ForwardPass pass = pass(tape)) {
            return pass.keep(forward(pass, x, t, y, r));
        }
    }

    /** The whole network on a given pass; the result is a temporary of that pass. */
    public Tensor forward(ForwardPass pass, Tensor x, Tensor t, Tensor y, Tensor r) {
        checkInputs(x, t, y, r);
        return network(pass, x, t, y, r, x.shape());
    }

    // ---------------------------------------------------------------- forward mode (JVP, facm-spec.md §6)

    /**
     * F and Ḟ = JVP of (x, τ) ↦ F_θ(x, τ, y [, r]) along (ẋ, τ̇), on a fresh {@link DualPass}: the primal records on
     * {@code tape} (null: none) exactly as {@link #forward(Tensor, Tensor, Tensor, Tensor, Tape)} does; the tangent is
     * never recorded. Both outputs are the caller's to close. xDot or tDot may be null (zero tangent).
     */
    public Dual jvp(Tensor x, Tensor xDot, Tensor t, Tensor tDot, Tensor y, Tensor r, Tape tape) {
        try (DualPass pass = new DualPass(be, precision, tape,
                precision == GemmPrecision.BF16 ? trainingForms() : null)) {
            return pass.keep(jvp(pass, x, xDot, t, tDot, y, r));
        }
    }

    /**
     * The whole network in forward mode on a given pass (result: temporaries of that pass). Labels, r (the auxiliary
     * time), parameters, pos_embed and the RoPE tables have zero tangent; xDot {@code [B,C,H,W]} and tDot {@code [B]}
     * may be null. Each tangent is released as soon as the next layer has consumed it.
     */
    public Dual jvp(DualPass pass, Tensor x, Tensor xDot, Tensor t, Tensor tDot, Tensor y, Tensor r) {
        checkInputs(x, t, y, r);
        if (xDot != null && !xDot.sameShape(x)) {
            throw new ShapeException("LightningDiT.jvp: tangent " + xDot.describe() + " should match x " + x.describe());
        }
        if (tDot != null && !tDot.sameShape(t)) {
            throw new ShapeException("LightningDiT.jvp: tangent " + tDot.describe() + " should match t " + t.describe());
        }
        Dual rDual = r == null ? null : new Dual(r, null);
        return network(pass, new Dual(x, xDot), new Dual(t, tDot), y, rDual, x.shape());
    }

    // ---------------------------------------------------------------- the network, once for every pass

    /** §3.2 end to end on checked inputs; the output {@code outShape} (x's shape) is a temporary of the pass. */
    private <V> V network(LayerOps<V> pass, V x, V t, Tensor y, V r, int[] outShape) {
        V h = embedPatches(pass, x);
        V sc = conditioning(pass, t, y, r);
        if (chainBlocks && pass instanceof ForwardPass fp && fp.tape() == null && c.depth() > 0) {
            V out = ChainedBlocks.run(this, pass, h, sc, outShape);
            pass.release(sc);
            return out;
        }
        for (int i = 0; i < c.depth(); i++) {
            h = checkpointBlocks && pass instanceof ForwardPass fp && fp.tape() != null
                    ? CheckpointedBlocks.run(this, fp, i, h, sc) : block(pass, i, h, sc);
        }
        V out = finalLayer(pass, h, sc, outShape);
        pass.release(h, sc);
        return out;
    }

    /** The residual stream after block i's attention branch, and the MLP branch's output (not yet added). */
    record Branches<V>(V h, V mlp) {
    }

    /** §3.2 steps 1–2: patch embedding plus the fixed absolute positions → h {@code [B,T,D]}. */
    public <V> V embedPatches(LayerOps<V> pass, V x) {
        int n = c.tokens();
        int d = c.hidden();
        V tokens = pass.patchify(x, c.patch(), n, c.patchFeatures());
        V h = pass.linear("h", tokens, w.get("x_embedder.proj.weight"), w.get("x_embedder.proj.bias"));
        pass.release(tokens);
        pass.addConstantInPlace(h, w.get("pos_embed").reshape(n, d));
        return h;
    }

    /** §3.2 steps 3–5: c = t_emb(τ) + y_emb(y) [+ r_emb(r)]; returns SiLU(c) {@code [B,D]}, every adaLN's input. */
    public <V> V conditioning(LayerOps<V> pass, V t, Tensor y, V r) {
        V te = timeEmbed(pass, "t_embedder", t);
        V ye = pass.embedding("y_emb", w.get("y_embedder.embedding_table.weight"), y);
        V cond = pass.add("c", te, ye);
        pass.release(te, ye);
        if (c.auxTime()) {
            V re = timeEmbed(pass, "r_embedder", r);
            V withR = pass.add("c", cond, re);
            pass.release(cond, re);
            cond = withR;
        }
        V sc = pass.silu("silu(c)", cond);
        pass.release(cond);
        return sc;
    }

    /** MLP(sinusoid(τ)) of §3.2 step 3. */
    private <V> V timeEmbed(LayerOps<V> pass, String prefix, V tau) {
        V f = pass.timestepEmbedding(prefix + ".features", tau, ModelConfig.TIME_FEATURES, ModelConfig.MAX_PERIOD);
        V h1 = pass.linear(prefix + ".h1", f, w.get(prefix + ".mlp.0.weight"), w.get(prefix + ".mlp.0.bias"));
        pass.release(f);
        V a1 = pass.silu(prefix + ".silu", h1);
        pass.release(h1);
        V out = pass.linear(prefix, a1, w.get(prefix + ".mlp.2.weight"), w.get(prefix + ".mlp.2.bias"));
        pass.release(a1);
        return out;
    }

    /**
     * Block i of §3.2: adaLN chunks [shift_a, scale_a, gate_a, shift_m, scale_m, gate_m], attention branch then MLP
     * branch, each added through its gate. Consumes h and returns the updated residual stream.
     */
    public <V> V block(LayerOps<V> pass, int i, V h, V sc) {
        V mod = blockModulation(pass, i, sc);
        String p = "blocks." + i + ".";
        V a = pass.rmsNormModulate(p + "norm1", h, w.get(p + "norm1.weight"), ModelConfig.NORM_EPS, mod, 0, 1);
        Branches<V> br = branches(pass, i, h, a, mod);
        h = pass.gatedResidual(br.h(), br.mlp(), mod, 5);
        pass.release(br.mlp(), mod);
        return h;
    }

    /** Block i's adaLN modulation {@code [B, 6·D]} from SiLU(c). */
    <V> V blockModulation(LayerOps<V> pass, int i, V sc) {
        String p = "blocks." + i + ".";
        return pass.linear(p + "mod", sc, w.get(p + "adaLN_modulation.1.weight"), w.get(p + "adaLN_modulation.1.bias"));
    }

    /**
     * Block i from its norm1 output {@code a} (consumed) on: attention branch added to h through gate_a (fused with
     * norm2), then the MLP branch, returned unadded (the caller adds it through gate_m, possibly fused with the next
     * norm). Consumes h.
     */
    <V> Branches<V> branches(LayerOps<V> pass, int i, V h, V a, V mod) {
        String p = "blocks." + i + ".";
        float eps = ModelConfig.NORM_EPS;
        V qkv = pass.linear(p + "qkv", a, w.get(p + "attn.qkv.weight"), w.get(p + "attn.qkv.bias"));
        pass.release(a);
        LayerOps.Qkv<V> heads = pass.qkNormRope(p + "attn", qkv, c.heads(), w.getOrNull(p + "attn.q_norm.weight"),
                w.getOrNull(p + "attn.k_norm.weight"), eps, w.getOrNull("feat_rope.freqs_cos"),
                w.getOrNull("feat_rope.freqs_sin"));
        pass.release(qkv);
        V o = pass.attention(p + "attn.out", heads.q(), heads.k(), heads.v(), (float) (1.0 / Math.sqrt(c.headDim())));
        pass.release(heads.q(), heads.k(), heads.v());
        V proj = pass.linear(p + "attn.proj", o, w.get(p + "attn.proj.weight"), w.get(p + "attn.proj.bias"));
        pass.release(o);
        LayerOps.ResidualNorm<V> rn = pass.gatedResidualRmsNormModulate(p + "norm2", h, proj, mod, 2,
                w.get(p + "norm2.weight"), eps, mod, 3, 4);
        pass.release(proj);
        V gu = pass.linear(p + "mlp.w12", rn.normed(), w.get(p + "mlp.w12.weight"), w.get(p + "mlp.w12.bias"));
        pass.release(rn.normed());
        V act = pass.swiglu(p + "mlp.act", gu);
        pass.release(gu);
        V m = pass.linear(p + "mlp.w3", act, w.get(p + "mlp.w3.weight"), w.get(p + "mlp.w3.bias"));
        pass.release(act);
        return new Branches<>(rn.h(), m);
    }

    /** §3.2 steps 7–8: adaLN [shift, scale], RMSNorm, output linear and unpatchify to {@code outShape}. */
    public <V> V finalLayer(LayerOps<V> pass, V h, V sc, int[] outShape) {
        V mf = finalModulation(pass, sc);
        V nf = pass.rmsNormModulate("final_layer.norm", h, w.get("final_layer.norm_final.weight"),
                ModelConfig.NORM_EPS, mf, 0, 1);
        V out = finalOutput(pass, nf, outShape);
        pass.release(mf);
        return out;
    }

    /** The final layer's adaLN modulation [shift, scale] {@code [B, 2·D]}. */
    <V> V finalModulation(LayerOps<V> pass, V sc) {
        return pass.linear("final_layer.mod", sc, w.get("final_layer.adaLN_modulation.1.weight"),
                w.get("final_layer.adaLN_modulation.1.bias"));
    }

    /** Output linear of the final norm's output {@code nf} (consumed) and unpatchify to {@code outShape}. */
    <V> V finalOutput(LayerOps<V> pass, V nf, int[] outShape) {
        V o = pass.linear("final_layer.linear", nf, w.get("final_layer.linear.weight"),
                w.get("final_layer.linear.bias"));
        pass.release(nf);
        V out = pass.unpatchify(o, c.patch(), outShape);
        pass.release(o);
        return out;
    }

    private void checkInputs(Tensor x, Tensor t, Tensor y, Tensor r) {
        if (x.rank() != 4 || x.dim(1) != c.inChannels() || x.dim(2) != c.inputSize() || x.dim(3) != c.inputSize()
                || x.dtype() != DType.F32) {
            throw new ShapeException("LightningDiT " + c.name() + ": input " + x.describe() + " should be f32[B,"
                    + c.inChannels() + "," + c.inputSize() + "," + c.inputSize() + "]");
        }
        int b = x.dim(0);
        if (t.rank() != 1 || t.dim(0) != b) {
            throw new ShapeException("LightningDiT: time " + t.describe() + " should be [" + b + "]");
        }
        if (y.rank() != 1 || y.dim(0) != b || y.dtype() != DType.I32) {
            throw new ShapeException("LightningDiT: labels " + y.describe() + " should be i32[" + b + "]");
        }
        if (c.auxTime() && (r == null || r.rank() != 1 || r.dim(0) != b)) {
            throw new ShapeException("LightningDiT: the auxiliary-time model needs r of shape [" + b + "]");
        }
    }
}
