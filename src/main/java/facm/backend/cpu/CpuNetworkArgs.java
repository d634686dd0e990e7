package facm.backend.cpu;

import facm.tensor.DType;
import facm.tensor.ShapeException;
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

    /** t as an open tensor of this backend, any dtype. */
    CpuTensor require(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        return backend.require(op + " " + role, t);
    }

    /** The live storage of an optional tensor. */
    static float[] array(CpuTensor t) {
        return t == null ? null : t.f32();
    }

    static String describeOrNull(Tensor t) {
        return t == null ? "null" : t.describe();
    }

    static void requireRank(String op, String role, Tensor t, int rank) {
        if (t.rank() != rank) {
            throw new ShapeException(op + ": " + role + " should have rank " + rank + ", got " + t.describe());
        }
    }

    /** Fails if {@code written} shares storage with any of the (possibly null) {@code others}. */
    static void requireNoSharing(String op, CpuTensor written, CpuTensor... others) {
        for (CpuTensor other : others) {
            if (other != null && written.sharesStorageWith(other)) {
                throw new ShapeException(op + ": " + written.describe() + " must not share storage with "
                        + other.describe());
            }
        }
    }

    /**
     * Checks an image {@code [B,C,H,W]} and its tokens {@code [B, (H/p)(W/p), C·p·p]} for one of the patch permutations
     * (forward or backward; the roles name the arguments, {@code features} the feature order) and that they do not
     * share storage.
     */
    CpuPatches.Grid patchGrid(String op, String imageRole, CpuTensor image, String tokensRole, CpuTensor tokens,
                              int patch, String features) {
        requireRank(op, imageRole + " [B,C,H,W]", image, 4);
        int h = image.dim(2), w = image.dim(3);
        if (patch < 1 || h % patch != 0 || w % patch != 0) {
            throw new ShapeException(op + ": patch " + patch + " must be >= 1 and divide the height and width of "
                    + imageRole + " " + image.describe());
        }
        CpuPatches.Grid grid = new CpuPatches.Grid(image.dim(0), image.dim(1), h, w, patch);
        Shapes.requireShape(op + ": " + tokensRole + " [B, (H/p)(W/p), " + features + "] for " + imageRole + " "
                + image.describe() + ", patch " + patch, tokens, grid.batch(), grid.tokens(), grid.features());
        requireNoSharing(op, image, tokens);
        return grid;
    }

    /** mod must be [B, K·D] and every chunk index in [0, K). */
    static void requireChunks(String op, Tensor mod, int batch, int d, String[] names, int... chunks) {
        if (d == 0 || mod.rank() != 2 || mod.dim(0) != batch || mod.dim(1) == 0 || mod.dim(1) % d != 0) {
            throw new ShapeException(op + ": mod " + mod.describe() + " should be [B, K·D] with B = " + batch
                    + ", D = " + d);
        }
        int count = mod.dim(1) / d;
        for (int i = 0; i < chunks.length; i++) {
            if (chunks[i] < 0 || chunks[i] >= count) {
                throw new ShapeException(op + ": " + names[i] + " " + chunks[i] + " is outside the " + count
                        + " chunks of mod " + mod.describe());
            }
        }
    }

    /** The checked inputs of qkNormRope and its backward; weights (qk-norm off) and tables (RoPE off) may be null. */
    record QkvInputs(CpuTensor qkv, CpuAttention.Layout layout, CpuTensor qWeight, CpuTensor kWeight, CpuTensor cos,
                     CpuTensor sin) {
    }

    QkvInputs qkvInputs(String op, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                        Tensor ropeSin) {
        CpuTensor in = f32(op, "qkv", qkv);
        requireRank(op, "qkv [B, T, 3·H·dh]", in, 3);
        int t = in.dim(1);
        if (heads < 1 || in.dim(2) == 0 || in.dim(2) % (3 * heads) != 0) {
            throw new ShapeException(op + ": qkv " + in.describe()
                    + " last dimension should be 3·heads·dh with heads = " + heads + " and dh >= 1");
        }
        int dh = in.dim(2) / (3 * heads);
        if ((qWeight == null) != (kWeight == null)) {
            throw new IllegalArgumentException(op + ": qWeight and kWeight must both be given (qk-norm on) or both "
                    + "be null (qk-norm off); got qWeight " + describeOrNull(qWeight) + ", kWeight "
                    + describeOrNull(kWeight));
        }
        CpuTensor qw = null, kw = null;
        if (qWeight != null) {
            qw = f32(op, "qWeight", qWeight);
            kw = f32(op, "kWeight", kWeight);
            Shapes.requireShape(op + ": qWeight [dh]", qw, dh);
            Shapes.requireShape(op + ": kWeight [dh]", kw, dh);
            if (!(eps >= 0) || Float.isInfinite(eps)) {
                throw new IllegalArgumentException(op + ": eps must be finite and >= 0, got " + eps);
            }
        }
        if ((ropeCos == null) != (ropeSin == null)) {
            throw new IllegalArgumentException(op + ": ropeCos and ropeSin must both be given (RoPE on) or both be "
                    + "null (RoPE off); got ropeCos " + describeOrNull(ropeCos) + ", ropeSin "
                    + describeOrNull(ropeSin));
        }
        CpuTensor cos = null, sin = null;
        if (ropeCos != null) {
            cos = f32(op, "ropeCos", ropeCos);
            sin = f32(op, "ropeSin", ropeSin);
            if (dh % 2 != 0) {
                throw new ShapeException(op + ": RoPE rotates channel pairs, so dh must be even; qkv " + in.describe()
                        + " with " + heads + " heads has dh = " + dh);
            }
            Shapes.requireShape(op + ": ropeCos [T, dh]", cos, t, dh);
            Shapes.requireShape(op + ": ropeSin [T, dh]", sin, t, dh);
        }
        return new QkvInputs(in, new CpuAttention.Layout(in.dim(0), heads, t, dh), qw, kw, cos, sin);
    }

    /** A head tensor [B,H,T,dh] of layout {@code l}, which came from {@code source} (named in the error). */
    CpuTensor headTensor(String op, String role, Tensor t, CpuAttention.Layout l, String sourceRole, Tensor source) {
        CpuTensor c = f32(op, role, t);
        Shapes.requireShape(op + ": " + role + " [B,H,T,dh] = "
                + Shapes.str(new int[] {l.batch(), l.heads(), l.tokens(), l.headDim()}) + " for " + sourceRole + " "
                + source.describe(), c, l.batch(), l.heads(), l.tokens(), l.headDim());
        return c;
    }

    /** The ρ of q and k, [B,T,2,H]. */
    CpuTensor qkRstd(String op, Tensor rstd, QkvInputs in) {
        CpuTensor r = f32(op, "rstd", rstd);
        CpuAttention.Layout l = in.layout();
        Shapes.requireShape(op + ": rstd [B,T,2,H]", r, l.batch(), l.tokens(), 2, l.heads());
        return r;
    }

    /** F for gu [..., 2F] and a second tensor [..., F] (SwiGLU's out, or gradOut in its backward). */
    int swigluWidth(String op, CpuTensor gu, String halfRole, CpuTensor half) {
        if (gu.rank() < 1 || gu.dim(-1) == 0 || gu.dim(-1) % 2 != 0) {
            throw new ShapeException(op + ": gu " + gu.describe() + " needs an even, non-zero last dimension 2F");
        }
        int f = gu.dim(-1) / 2;
        int[] expected = gu.shape();
        expected[expected.length - 1] = f;
        Shapes.requireShape(op + ": " + halfRole + " [rows, F] for gu " + gu.describe(), half, expected);
        return f;
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
        if (in.rank() < 1 || in.dim(-1) == 0) {
            throw new ShapeException(op + ": x " + in.describe() + " needs a non-empty last dimension to normalize");
        }
        int d = in.dim(-1);
        int rows = (int) (in.numel() / d);
        Shapes.requireShape(op + ": weight [D] for x " + in.describe(), w, d);
        CpuTensor m = null;
        int tokens = rows;
        if (mod != null) {
            m = f32(op, "mod", mod);
            requireRank(op, "x [B,T,D] (with mod)", in, 3);
            tokens = in.dim(1);
            requireChunks(op, m, in.dim(0), d, new String[] {"shiftChunk", "scaleChunk"}, shiftChunk, scaleChunk);
        }
        return new NormInputs(in, w, m, rows, tokens, d);
    }

    /** One ρ per row of x (any shape with that many elements). */
    CpuTensor rowRstd(String op, Tensor rstd, NormInputs in) {
        CpuTensor r = f32(op, "rstd", rstd);
        if (r.numel() != in.rows()) {
            throw new ShapeException(op + ": rstd " + r.describe() + " should hold one value per row of x "
                    + in.x().describe() + " (" + in.rows() + ")");
        }
        return r;
    }

    /** The checked inputs of attention and its backward. */
    record AttentionInputs(CpuTensor q, CpuTensor k, CpuTensor v, CpuTensor out, CpuAttention.Layout layout) {
    }

    /** q, k, v [B,H,T,dh] with dh >= 1, out [B, T, H·dh] (attention's output, read again by its backward). */
    AttentionInputs attentionInputs(String op, Tensor q, Tensor k, Tensor v, float scale, Tensor out) {
        CpuTensor qs = f32(op, "q", q), ks = f32(op, "k", k), vs = f32(op, "v", v), o = f32(op, "out", out);
        requireRank(op, "q [B,H,T,dh]", qs, 4);
        Shapes.requireSame(op + " (k vs q)", ks, qs);
        Shapes.requireSame(op + " (v vs q)", vs, qs);
        int b = qs.dim(0), heads = qs.dim(1), t = qs.dim(2), dh = qs.dim(3);
        Shapes.requireShape(op + ": out [B, T, H·dh] for q " + qs.describe(), o, b, t, heads * dh);
        if (Float.isNaN(scale) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException(op + ": scale must be finite, got " + scale);
        }
        if (dh == 0) {
            throw new ShapeException(op + ": q " + qs.describe() + " has head dimension 0");
        }
        return new AttentionInputs(qs, ks, vs, o, new CpuAttention.Layout(b, heads, t, dh));
    }

    /** The log-sum-exp of every query row, [B,H,T]. */
    CpuTensor lse(String op, Tensor lse, AttentionInputs in) {
        CpuTensor l = f32(op, "lse", lse);
        CpuAttention.Layout a = in.layout();
        Shapes.requireShape(op + ": lse [B,H,T] for q " + in.q().describe(), l, a.batch(), a.heads(), a.tokens());
        return l;
    }
}
