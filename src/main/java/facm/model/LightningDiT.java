package facm.model;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import facm.tensor.TensorScope;
import facm.tensor.UnaryOp;

/**
 * The LightningDiT forward pass F_θ(x, τ, y [, r]) of facm-spec.md §3.2, written once against {@link Backend} and
 * {@link NetworkOps} so the same code runs on CPU and CUDA. Inputs: x {@code [B,C,H,W]}, τ {@code [B]} (used as given:
 * t ∈ [0,1] for the CM task, 2 − t for the FM task), y {@code [B]} I32 labels (null class = numClasses), and r
 * {@code [B]} only when the config has the auxiliary time embedder. Output {@code [B,C,H,W]}.
 */
public final class LightningDiT {
    private final ModelWeights w;
    private final ModelConfig c;
    private final Backend be;
    private final NetworkOps net;
    private GemmPrecision precision = GemmPrecision.FP32;

    public LightningDiT(ModelWeights weights) {
        this.w = weights;
        this.c = weights.config();
        this.be = weights.backend();
        this.net = be.network();
    }

    public ModelConfig config() {
        return c;
    }

    public ModelWeights weights() {
        return w;
    }

    /** FP32 (default) or TF32 matrix products for F32 weights. */
    public LightningDiT precision(GemmPrecision p) {
        this.precision = p;
        return this;
    }

    public Tensor forward(Tensor x, Tensor t, Tensor y) {
        return forward(x, t, y, null);
    }

    public Tensor forward(Tensor x, Tensor t, Tensor y, Tensor r) {
        int b = checkInputs(x, t, y, r);
        int n = c.tokens();
        int d = c.hidden();
        Tensor out = be.empty("F", DType.F32, b, c.inChannels(), c.inputSize(), c.inputSize());
        try (TensorScope s = new TensorScope()) {
            // §3.2 steps 1-2: patch embed and absolute positions
            Tensor tokens = s.track(be.empty("patches", DType.F32, b, n, c.patchFeatures()));
            net.patchify(x, c.patch(), tokens);
            Tensor h = s.track(be.empty("h", DType.F32, b, n, d));
            Tensor pe = w.get("x_embedder.proj.weight");
            be.linear(tokens, pe.reshape(d, c.patchFeatures()), w.get("x_embedder.proj.bias"), h, precision);
            be.binary(facm.tensor.BinaryOp.ADD, h, w.get("pos_embed").reshape(n, d), h);

            // steps 3-5: conditioning c = t_emb(τ) + y_emb(y) [+ r_emb(r)], then SiLU(c) feeds every adaLN
            Tensor cond = s.track(timeEmbed("t_embedder", t, b, s));
            Tensor ye = s.track(be.empty("y_emb", DType.F32, b, d));
            net.embedding(w.get("y_embedder.embedding_table.weight"), y, ye);
            be.binary(facm.tensor.BinaryOp.ADD, cond, ye, cond);
            if (c.auxTime()) {
                Tensor re = s.track(timeEmbed("r_embedder", r, b, s));
                be.binary(facm.tensor.BinaryOp.ADD, cond, re, cond);
            }
            Tensor sc = s.track(be.unary(UnaryOp.SILU, cond));

            // step 6: blocks
            BlockBuffers buf = new BlockBuffers(be, c, b, s);
            for (int i = 0; i < c.depth(); i++) {
                block(i, h, sc, buf);
            }

            // step 7-8: final layer and unpatchify
            Tensor mf = s.track(be.empty("mod_final", DType.F32, b, 2 * d));
            be.linear(sc, w.get("final_layer.adaLN_modulation.1.weight"), w.get("final_layer.adaLN_modulation.1.bias"),
                    mf, precision);
            net.rmsNormModulate(h, w.get("final_layer.norm_final.weight"), ModelConfig.NORM_EPS, mf, 0, 1, buf.normed, null);
            Tensor o = s.track(be.empty("o", DType.F32, b, n, c.patchFeatures()));
            be.linear(buf.normed, w.get("final_layer.linear.weight"), w.get("final_layer.linear.bias"), o, precision);
            net.unpatchify(o, c.patch(), out);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** MLP(sinusoid(τ)) of §3.2 step 3. */
    private Tensor timeEmbed(String prefix, Tensor tau, int b, TensorScope s) {
        Tensor f = s.track(be.empty(prefix + ".features", DType.F32, b, ModelConfig.TIME_FEATURES));
        net.timestepEmbedding(tau, ModelConfig.MAX_PERIOD, f);
        Tensor h1 = s.track(be.empty(prefix + ".h1", DType.F32, b, c.hidden()));
        be.linear(f, w.get(prefix + ".mlp.0.weight"), w.get(prefix + ".mlp.0.bias"), h1, precision);
        be.unary(UnaryOp.SILU, h1, h1);
        Tensor out = be.empty(prefix + ".out", DType.F32, b, c.hidden());
        be.linear(h1, w.get(prefix + ".mlp.2.weight"), w.get(prefix + ".mlp.2.bias"), out, precision);
        return out;
    }

    /** Activations of one block, reused by every block of a forward pass. */
    private static final class BlockBuffers {
        final Tensor mod;
        final Tensor normed;
        final Tensor qkv;
        final Tensor q;
        final Tensor k;
        final Tensor v;
        final Tensor attn;
        final Tensor proj;
        final Tensor gu;
        final Tensor act;

        BlockBuffers(Backend be, ModelConfig c, int b, TensorScope s) {
            int n = c.tokens();
            int d = c.hidden();
            mod = s.track(be.empty("mod", DType.F32, b, 6 * d));
            normed = s.track(be.empty("normed", DType.F32, b, n, d));
            qkv = s.track(be.empty("qkv", DType.F32, b, n, 3 * d));
            q = s.track(be.empty("q", DType.F32, b, c.heads(), n, c.headDim()));
            k = s.track(be.empty("k", DType.F32, b, c.heads(), n, c.headDim()));
            v = s.track(be.empty("v", DType.F32, b, c.heads(), n, c.headDim()));
            attn = s.track(be.empty("attn", DType.F32, b, n, d));
            proj = s.track(be.empty("proj", DType.F32, b, n, d));
            gu = s.track(be.empty("gu", DType.F32, b, n, 2 * c.mlpHidden()));
            act = s.track(be.empty("swiglu", DType.F32, b, n, c.mlpHidden()));
        }
    }

    private void block(int i, Tensor h, Tensor sc, BlockBuffers x) {
        String p = "blocks." + i + ".";
        float eps = ModelConfig.NORM_EPS;
        be.linear(sc, w.get(p + "adaLN_modulation.1.weight"), w.get(p + "adaLN_modulation.1.bias"), x.mod, precision);
        // attention branch: chunks 0 shift_a, 1 scale_a, 2 gate_a
        net.rmsNormModulate(h, w.get(p + "norm1.weight"), eps, x.mod, 0, 1, x.normed, null);
        be.linear(x.normed, w.get(p + "attn.qkv.weight"), w.get(p + "attn.qkv.bias"), x.qkv, precision);
        net.qkNormRope(x.qkv, c.heads(), w.getOrNull(p + "attn.q_norm.weight"), w.getOrNull(p + "attn.k_norm.weight"),
                eps, w.getOrNull("feat_rope.freqs_cos"), w.getOrNull("feat_rope.freqs_sin"), x.q, x.k, x.v, null);
        net.attention(x.q, x.k, x.v, (float) (1.0 / Math.sqrt(c.headDim())), x.attn, null);
        be.linear(x.attn, w.get(p + "attn.proj.weight"), w.get(p + "attn.proj.bias"), x.proj, precision);
        net.gatedResidual(h, x.proj, x.mod, 2);
        // MLP branch: chunks 3 shift_m, 4 scale_m, 5 gate_m
        net.rmsNormModulate(h, w.get(p + "norm2.weight"), eps, x.mod, 3, 4, x.normed, null);
        be.linear(x.normed, w.get(p + "mlp.w12.weight"), w.get(p + "mlp.w12.bias"), x.gu, precision);
        net.swiglu(x.gu, x.act);
        be.linear(x.act, w.get(p + "mlp.w3.weight"), w.get(p + "mlp.w3.bias"), x.proj, precision);
        net.gatedResidual(h, x.proj, x.mod, 5);
    }

    private int checkInputs(Tensor x, Tensor t, Tensor y, Tensor r) {
        if (x.rank() != 4 || x.dim(1) != c.inChannels() || x.dim(2) != c.inputSize() || x.dim(3) != c.inputSize()) {
            throw new ShapeException("LightningDiT " + c.name() + ": input " + x.describe() + " should be [B,"
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
        return b;
    }
}
