package facm.backend.cpu;

import facm.tensor.DType;
import facm.tensor.NetworkChecks;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Objects;

/**
 * Argument checks shared by the forward network ops ({@link CpuNetworkOps}), their backward twins
 * ({@link CpuNetworkBackward}) and the training ops ({@link CpuTrainingOps}): each names the op and the argument in
 * its error, so a forward and its backward reject the same mistakes with the same words.
 */
final class CpuNetworkArgs {
    private final CpuBackend backend;

    CpuNetworkArgs(CpuBackend backend) {
        this.backend = Objects.requireNonNull(backend, "CpuNetworkArgs: backend is null");
    }

    ParallelRanges parallel() {
        return backend.parallel();
    }

    /** t as an open F32 tensor of this backend; {@code role} names the argument in errors. */
    CpuTensor f32(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CpuTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, DType.F32);
        return c;
    }

    /** Like {@link #f32} for an optional argument: null stays null. */
    CpuTensor optionalF32(String op, String role, Tensor t) {
        return t == null ? null : f32(op, role, t);
    }

    /** t as an open tensor of this backend, any dtype. */
    CpuTensor require(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        return backend.require(op + " " + role, t);
    }

    /** The live storage of an optional tensor. */
    static float[] array(CpuTensor t) {
        return t == null ? null : t.f32();
    }

    /**
     * Checks an image {@code [B,C,H,W]} and its tokens {@code [B, (H/p)(W/p), C·p·p]} for one of the patch permutations
     * (forward or backward; the roles name the arguments, {@code features} the feature order) and that they do not
     * share storage.
     */
    CpuPatches.Grid patchGrid(String op, String imageRole, CpuTensor image, String tokensRole, CpuTensor tokens,
                              int patch, String features) {
        NetworkChecks.patches(op, imageRole, image, tokensRole, tokens, patch, features);
        return new CpuPatches.Grid(image.dim(0), image.dim(1), image.dim(2), image.dim(3), patch);
    }

    /** The checked inputs of qkNormRope and its backward; weights (qk-norm off) and tables (RoPE off) may be null. */
    record QkvInputs(CpuTensor qkv, CpuAttention.Layout layout, CpuTensor qWeight, CpuTensor kWeight, CpuTensor cos,
                     CpuTensor sin) {
    }

    QkvInputs qkvInputs(String op, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                        Tensor ropeSin) {
        CpuTensor in = f32(op, "qkv", qkv);
        CpuTensor qw = optionalF32(op, "qWeight", qWeight), kw = optionalF32(op, "kWeight", kWeight);
        CpuTensor cos = optionalF32(op, "ropeCos", ropeCos), sin = optionalF32(op, "ropeSin", ropeSin);
        int dh = NetworkChecks.qkvInputs(op, in, heads, qw, kw, eps, cos, sin);
        return new QkvInputs(in, new CpuAttention.Layout(in.dim(0), heads, in.dim(1), dh), qw, kw, cos, sin);
    }

    /** A head tensor [B,H,T,dh] of layout {@code l}, which came from {@code source} (named in the error). */
    CpuTensor headTensor(String op, String role, Tensor t, CpuAttention.Layout l, String sourceRole, Tensor source) {
        CpuTensor c = f32(op, role, t);
        NetworkChecks.headTensor(op, role, c, new int[] {l.batch(), l.heads(), l.tokens(), l.headDim()}, sourceRole,
                source);
        return c;
    }

    /** The ρ of q and k, [B,T,2,H]. */
    CpuTensor qkRstd(String op, Tensor rstd, QkvInputs in) {
        CpuTensor r = f32(op, "rstd", rstd);
        CpuAttention.Layout l = in.layout();
        NetworkChecks.qkRstd(op, r, l.batch(), l.tokens(), l.heads());
        return r;
    }

    /** F for gu [..., 2F] and a second tensor [..., F] (SwiGLU's out, or gradOut in its backward). */
    int swigluWidth(String op, CpuTensor gu, String halfRole, CpuTensor half) {
        return NetworkChecks.swigluWidth(op, gu, halfRole, half);
    }

    /** The checked inputs of rmsNormModulate and its backward; mod is null for plain RMSNorm. */
    record NormInputs(CpuTensor x, CpuTensor weight, CpuTensor mod, int rows, int tokens, int d) {
        int modWidth() {
            return mod == null ? 0 : mod.dim(1);
        }
    }

    NormInputs normInputs(String op, Tensor x, Tensor weight, Tensor mod, int shiftChunk, int scaleChunk) {
        CpuTensor in = f32(op, "x", x);
        CpuTensor w = f32(op, "weight", weight);
        CpuTensor m = mod == null ? null : f32(op, "mod", mod);
        int d = NetworkChecks.normInputs(op, in, w, m, shiftChunk, scaleChunk);
        int rows = (int) (in.numel() / d);
        return new NormInputs(in, w, m, rows, m == null ? rows : in.dim(1), d);
    }

    /** One ρ per row of x (any shape with that many elements). */
    CpuTensor rowRstd(String op, Tensor rstd, NormInputs in) {
        CpuTensor r = f32(op, "rstd", rstd);
        NetworkChecks.rowRstd(op, r, in.x());
        return r;
    }

    /** The checked inputs of attention and its backward. */
    record AttentionInputs(CpuTensor q, CpuTensor k, CpuTensor v, CpuTensor out, CpuAttention.Layout layout) {
    }

    /**
     * q, k, v [B,H,T,dh] with dh >= 1, out [B, T, H·dh] (attention's output, read again by its backward); dtypes by
     * NetworkChecks.attentionDTypes (all F32, or BF16 inputs with an F32 or BF16 out).
     */
    AttentionInputs attentionInputs(String op, Tensor q, Tensor k, Tensor v, float scale, Tensor out) {
        CpuTensor qs = require(op, "q", q), ks = require(op, "k", k), vs = require(op, "v", v);
        CpuTensor o = require(op, "out", out);
        NetworkChecks.attentionInputs(op, qs, ks, vs, scale, o);
        return new AttentionInputs(qs, ks, vs, o, new CpuAttention.Layout(qs.dim(0), qs.dim(1), qs.dim(2), qs.dim(3)));
    }

    /** The log-sum-exp of every query row, [B,H,T]. */
    CpuTensor lse(String op, Tensor lse, AttentionInputs in) {
        CpuTensor l = f32(op, "lse", lse);
        NetworkChecks.lse(op, l, in.q());
        return l;
    }
}
