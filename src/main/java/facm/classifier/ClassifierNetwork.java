package facm.classifier;

import facm.autograd.ForwardPass;
import facm.autograd.LayerOps;
import facm.autograd.Tape;
import facm.model.FixedTables;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.ReduceOp;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

/**
 * The classifier's forward pass (architecture in {@link ClassifierConfig}), written with the engine's layer ops on a
 * {@link ForwardPass}, so the same code runs on CPU and CUDA, with a {@link Tape} for training or without one for
 * inference. The only op the layer set lacks is the mean over tokens; {@link #tokenMean} records its backward on the
 * tape itself (a broadcast back over the tokens as one GEMM with a ones column).
 *
 * <p>Owns two constant tensors on the weights' backend: the position table {@code [T, D]} and the ones column
 * {@code [T, 1]}.
 */
final class ClassifierNetwork implements AutoCloseable {
    private final ClassifierWeights w;
    private final ClassifierConfig c;
    private final Backend be;
    private final Tensor positions;
    private final Tensor ones;

    ClassifierNetwork(ClassifierWeights weights) {
        this.w = weights;
        this.c = weights.config();
        this.be = weights.backend();
        this.positions = be.upload("classifier positions", FixedTables.positionTable(c.gridSize(), c.width()),
                c.tokens(), c.width());
        float[] one = new float[c.tokens()];
        java.util.Arrays.fill(one, 1f);
        this.ones = be.upload("classifier ones", one, c.tokens(), 1);
    }

    ClassifierWeights weights() {
        return w;
    }

    /** Logits {@code [N, K]}, a temporary of {@code pass}. */
    Tensor logits(ForwardPass pass, Tensor images) {
        Tensor features = features(pass, images);
        Tensor logits = head(pass, features);
        pass.release(features);
        return logits;
    }

    /** The linear head: features {@code [N, D]} → logits {@code [N, K]} (a temporary of the pass). */
    Tensor head(ForwardPass pass, Tensor features) {
        return pass.linear("head", features, w.get("head.weight"), w.get("head.bias"));
    }

    /** The feature vectors {@code [N, D]}: the normalized tokens averaged over the tokens (a temporary of the pass). */
    Tensor features(ForwardPass pass, Tensor images) {
        checkImages(images);
        Tensor patches = pass.patchify(images, c.patch(), c.tokens(), c.patchFeatures());
        Tensor h = pass.linear("embed", patches, w.get("patch_embed.weight"), w.get("patch_embed.bias"));
        pass.release(patches);
        pass.addConstantInPlace(h, positions);
        for (int i = 0; i < c.depth(); i++) {
            h = block(pass, i, h);
        }
        Tensor normed = pass.rmsNormModulate("norm", h, w.get("norm.weight"), ClassifierConfig.NORM_EPS, null, 0, 0);
        pass.release(h);
        Tensor features = tokenMean(pass, normed);
        pass.release(normed);
        return features;
    }

    /** Pre-norm block i: h + attn(norm1(h)), then + mlp(norm2(·)). Consumes h. */
    private Tensor block(ForwardPass pass, int i, Tensor h) {
        String p = "blocks." + i + ".";
        float eps = ClassifierConfig.NORM_EPS;
        Tensor a = pass.rmsNormModulate(p + "norm1", h, w.get(p + "norm1.weight"), eps, null, 0, 0);
        Tensor qkv = pass.linear(p + "qkv", a, w.get(p + "attn.qkv.weight"), w.get(p + "attn.qkv.bias"));
        pass.release(a);
        LayerOps.Qkv<Tensor> heads = pass.qkNormRope(p + "attn", qkv, c.heads(), null, null, eps, null, null);
        pass.release(qkv);
        Tensor o = pass.attention(p + "attn.out", heads.q(), heads.k(), heads.v(),
                (float) (1.0 / Math.sqrt(c.headDim())));
        pass.release(heads.q(), heads.k(), heads.v());
        Tensor proj = pass.linear(p + "attn.proj", o, w.get(p + "attn.proj.weight"), w.get(p + "attn.proj.bias"));
        pass.release(o);
        Tensor mid = pass.add(p + "mid", h, proj);
        pass.release(h, proj);

        Tensor b = pass.rmsNormModulate(p + "norm2", mid, w.get(p + "norm2.weight"), eps, null, 0, 0);
        Tensor gu = pass.linear(p + "mlp.w12", b, w.get(p + "mlp.w12.weight"), w.get(p + "mlp.w12.bias"));
        pass.release(b);
        Tensor act = pass.swiglu(p + "mlp.act", gu);
        pass.release(gu);
        Tensor m = pass.linear(p + "mlp.w3", act, w.get(p + "mlp.w3.weight"), w.get(p + "mlp.w3.bias"));
        pass.release(act);
        Tensor out = pass.add(p + "out", mid, m);
        pass.release(mid, m);
        return out;
    }

    /**
     * f[n, d] = mean_t h[n, t, d] for h {@code [N, T, D]} (the backend's reduce op). Backward: every token gets
     * gradF[n]/T, written as the batched product ones{@code [T,1]} · gradF{@code [N,1,D]} scaled by 1/T (FP32 GEMM,
     * k = 1: exact products, one rounding of the scale).
     */
    private Tensor tokenMean(ForwardPass pass, Tensor h) {
        int n = h.dim(0), t = h.dim(1), d = h.dim(2);
        Tensor out = pass.alloc("features", DType.F32, n, d);
        be.reduce(ReduceOp.MEAN, h, 1, out);
        Tape tape = pass.tape();
        if (tape != null && tape.requiresGrad(h)) {
            tape.record("tokenMean", () -> {
                Tensor gh = tape.newGradBuffer(h);
                be.gemm(ones, false, tape.grad(out).reshape(n, 1, d), false, gh, 1f / t, 0f, GemmPrecision.FP32);
                tape.adoptGrad(h, gh);
            }, out);
        }
        return out;
    }

    private void checkImages(Tensor images) {
        if (images.rank() != 4 || images.dtype() != DType.F32 || images.dim(1) != c.channels()
                || images.dim(2) != c.imageSize() || images.dim(3) != c.imageSize() || images.dim(0) < 1) {
            throw new ShapeException("classifier: images " + images.describe() + " should be f32[N," + c.channels()
                    + "," + c.imageSize() + "," + c.imageSize() + "] with N >= 1 (in [-1, 1], as the data loaders "
                    + "give them)");
        }
    }

    @Override
    public void close() {
        positions.close();
        ones.close();
    }
}
