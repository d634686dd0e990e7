package facm.tensor;

/**
 * The backend-independent argument rules of {@link NetworkOps}, written once: ranks, shapes, storage sharing, scalar
 * ranges and paired-null rules. Backends first convert each tensor to their own type (which checks that it is non-null,
 * open, theirs and of the right dtype), then call the rule here; limits of one backend's kernels (supported head
 * dimensions, launch sizes, alignment) stay in that backend.
 */
public final class NetworkChecks {
    private NetworkChecks() {
    }

    /**
     * An image {@code [B,C,H,W]} and its tokens {@code [B, (H/p)(W/p), C·p·p]} of one of the patch permutations
     * (forward or backward: the roles name the arguments, {@code features} the feature order), in separate storage.
     */
    public static void patches(String op, String imageRole, Tensor image, String tokensRole, Tensor tokens, int patch,
                               String features) {
        Shapes.requireRank(op, imageRole + " [B,C,H,W]", image, 4);
        int h = image.dim(2), w = image.dim(3);
        if (patch < 1 || h % patch != 0 || w % patch != 0) {
            throw new ShapeException(op + ": patch " + patch + " must be >= 1 and divide the height and width of "
                    + imageRole + " " + image.describe());
        }
        Shapes.requireShape(op + ": " + tokensRole + " [B, (H/p)(W/p), " + features + "] for " + imageRole + " "
                        + image.describe() + ", patch " + patch, tokens, image.dim(0), (h / patch) * (w / patch),
                image.dim(1) * patch * patch);
        Shapes.requireNoSharing(op, image, tokens);
    }

    /** timestepEmbedding: t [B], out [B, dim] with dim even and >= 2, maxPeriod finite and positive. */
    public static void timestepEmbedding(String op, Tensor t, float maxPeriod, Tensor out) {
        Shapes.requireRank(op, "t [B]", t, 1);
        Shapes.requireRank(op, "out [B, dim]", out, 2);
        int b = t.dim(0), dim = out.dim(1);
        if (out.dim(0) != b || dim < 2 || dim % 2 != 0) {
            throw new ShapeException(op + ": out " + out.describe() + " should be [B, dim] with B = " + b
                    + " (from t " + t.describe() + ") and dim even and >= 2");
        }
        if (!(maxPeriod > 0) || Float.isInfinite(maxPeriod)) {
            throw new IllegalArgumentException(op + ": maxPeriod must be finite and positive, got " + maxPeriod);
        }
    }

    /** embedding: table [V, D], ids [B], out [B, D] apart from table (the id range is checked on the data). */
    public static void embedding(String op, Tensor table, Tensor ids, Tensor out) {
        Shapes.requireRank(op, "table [V, D]", table, 2);
        Shapes.requireRank(op, "ids [B]", ids, 1);
        Shapes.requireShape(op + ": out [B, D] for table " + table.describe() + ", ids " + ids.describe(), out,
                ids.dim(0), table.dim(1));
        Shapes.requireNoSharing(op, out, table);
    }

    /** mod must be [B, K·D] and every chunk index in [0, K). */
    public static void requireChunks(String op, Tensor mod, int batch, int d, String[] names, int... chunks) {
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

    /**
     * The inputs of rmsNormModulate and its backward and JVP: x [..., D] with D >= 1, weight [D], and when mod is given
     * x [B,T,D] and mod [B, K·D] holding the shift and scale chunks. Returns D.
     */
    public static int normInputs(String op, Tensor x, Tensor weight, Tensor mod, int shiftChunk, int scaleChunk) {
        if (x.rank() < 1 || x.dim(-1) == 0) {
            throw new ShapeException(op + ": x " + x.describe() + " needs a non-empty last dimension to normalize");
        }
        int d = x.dim(-1);
        Shapes.requireShape(op + ": weight [D] for x " + x.describe(), weight, d);
        if (mod != null) {
            Shapes.requireRank(op, "x [B,T,D] (with mod)", x, 3);
            requireChunks(op, mod, x.dim(0), d, new String[] {"shiftChunk", "scaleChunk"}, shiftChunk, scaleChunk);
        }
        return d;
    }

    /** rstd holds one ρ per row of x (any shape with that many elements). */
    public static void rowRstd(String op, Tensor rstd, Tensor x) {
        long rows = x.numel() / x.dim(-1);
        if (rstd.numel() != rows) {
            throw new ShapeException(op + ": rstd " + rstd.describe() + " should hold one value per row of x "
                    + x.describe() + " (" + rows + ")");
        }
    }

    /**
     * rmsNormModulate: the {@link #normInputs} rules, out like x (it may be x itself), eps finite and >= 0, the
     * optional rstd one value per row apart from everything else, out apart from weight and mod.
     */
    public static void rmsNormModulate(String op, Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk,
                                       int scaleChunk, Tensor out, Tensor rstd) {
        normInputs(op, x, weight, mod, shiftChunk, scaleChunk);
        Shapes.requireSame(op + " (out vs x)", out, x);
        requireEps(op, eps);
        if (rstd != null) {
            rowRstd(op, rstd, x);
            Shapes.requireNoSharing(op, rstd, x, weight, mod, out);
        }
        Shapes.requireNoSharing(op, out, weight, mod);
    }

    /** gatedResidual: h [B,T,D], a like h (it may be h), mod [B, K·D] with the gate chunk, h apart from mod. */
    public static void gatedResidual(String op, Tensor h, Tensor a, Tensor mod, int gateChunk) {
        Shapes.requireRank(op, "h [B,T,D]", h, 3);
        Shapes.requireSame(op + " (a vs h)", a, h);
        requireChunks(op, mod, h.dim(0), h.dim(2), new String[] {"gateChunk"}, gateChunk);
        Shapes.requireNoSharing(op, h, mod);
    }

    /** F for gu [..., 2F] and a second tensor [..., F] (SwiGLU's out, or gradOut in its backward). */
    public static int swigluWidth(String op, Tensor gu, String halfRole, Tensor half) {
        if (gu.rank() < 1 || gu.dim(-1) == 0 || gu.dim(-1) % 2 != 0) {
            throw new ShapeException(op + ": gu " + gu.describe() + " needs an even, non-zero last dimension 2F");
        }
        int f = gu.dim(-1) / 2;
        int[] expected = gu.shape();
        expected[expected.length - 1] = f;
        Shapes.requireShape(op + ": " + halfRole + " [rows, F] for gu " + gu.describe(), half, expected);
        return f;
    }

    /** q, k, v [B,H,T,dh] alike with dh >= 1, out [B, T, H·dh], scale finite (attention and its backward, JVP). */
    public static void attentionInputs(String op, Tensor q, Tensor k, Tensor v, float scale, Tensor out) {
        Shapes.requireRank(op, "q [B,H,T,dh]", q, 4);
        Shapes.requireSame(op + " (k vs q)", k, q);
        Shapes.requireSame(op + " (v vs q)", v, q);
        Shapes.requireShape(op + ": out [B, T, H·dh] for q " + q.describe(), out, q.dim(0), q.dim(2),
                q.dim(1) * q.dim(3));
        if (Float.isNaN(scale) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException(op + ": scale must be finite, got " + scale);
        }
        if (q.dim(3) == 0) {
            throw new ShapeException(op + ": q " + q.describe() + " has head dimension 0");
        }
        attentionDTypes(op, q, k, v, out);
    }

    /**
     * The attention dtypes: q, k, v all F32 (the fp32 kernels) or all BF16 (the tensor-core kernels: bf16 operands,
     * fp32 accumulation); out F32, or also BF16 when the inputs are BF16 (see {@link #attentionActivation}).
     */
    public static void attentionDTypes(String op, Tensor q, Tensor k, Tensor v, Tensor out) {
        Shapes.requireDType(op + ": q", q, DType.F32, DType.BF16);
        if (k.dtype() != q.dtype() || v.dtype() != q.dtype()) {
            throw new ShapeException(op + ": q, k and v must share one dtype (f32 or bf16); got " + q.describe()
                    + ", " + k.describe() + ", " + v.describe());
        }
        attentionActivation(op, "out", out, q);
    }

    /**
     * A token-major activation of attention (out, outDot, gradOut): F32, or F32 or BF16 when q is BF16 (with fp32
     * inputs every kernel reads and writes fp32).
     */
    public static void attentionActivation(String op, String role, Tensor t, Tensor q) {
        if (q.dtype() == DType.BF16) {
            Shapes.requireDType(op + ": " + role, t, DType.F32, DType.BF16);
        } else {
            Shapes.requireDType(op + ": " + role + " (q is " + q.dtype().lower() + ")", t, DType.F32);
        }
    }

    /** A tangent (qDot, kDot, vDot) of attention's JVP has its primal's dtype. */
    public static void attentionTangent(String op, String role, Tensor tangent, Tensor q) {
        Shapes.requireDType(op + ": " + role + " (same dtype as q " + q.describe() + ")", tangent, q.dtype());
    }

    /** The log-sum-exp of every query row of q [B,H,T,dh]: [B,H,T]. */
    public static void lse(String op, Tensor lse, Tensor q) {
        Shapes.requireShape(op + ": lse [B,H,T] for q " + q.describe(), lse, q.dim(0), q.dim(1), q.dim(2));
    }

    /** attention: the {@link #attentionInputs} rules, out apart from q, k, v, the optional lse apart from all. */
    public static void attention(String op, Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse) {
        attentionInputs(op, q, k, v, scale, out);
        Shapes.requireNoSharing(op, out, q, k, v);
        if (lse != null) {
            lse(op, lse, q);
            Shapes.requireNoSharing(op, lse, q, k, v, out);
        }
    }

    /**
     * The inputs of qkNormRope and its backward and JVP: qkv [B, T, 3·H·dh] with heads >= 1 and dh >= 1; qWeight and
     * kWeight [dh] both given (qk-norm on, then eps finite and >= 0) or both null; ropeCos and ropeSin [T, dh] both
     * given (RoPE on, then dh even) or both null. Returns dh.
     */
    public static int qkvInputs(String op, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps,
                                Tensor ropeCos, Tensor ropeSin) {
        Shapes.requireRank(op, "qkv [B, T, 3·H·dh]", qkv, 3);
        int t = qkv.dim(1);
        if (heads < 1 || qkv.dim(2) == 0 || qkv.dim(2) % (3 * heads) != 0) {
            throw new ShapeException(op + ": qkv " + qkv.describe()
                    + " last dimension should be 3·heads·dh with heads = " + heads + " and dh >= 1");
        }
        int dh = qkv.dim(2) / (3 * heads);
        if ((qWeight == null) != (kWeight == null)) {
            throw new IllegalArgumentException(op + ": qWeight and kWeight must both be given (qk-norm on) or both "
                    + "be null (qk-norm off); got qWeight " + describeOrNull(qWeight) + ", kWeight "
                    + describeOrNull(kWeight));
        }
        if (qWeight != null) {
            Shapes.requireShape(op + ": qWeight [dh]", qWeight, dh);
            Shapes.requireShape(op + ": kWeight [dh]", kWeight, dh);
            requireEps(op, eps);
        }
        if ((ropeCos == null) != (ropeSin == null)) {
            throw new IllegalArgumentException(op + ": ropeCos and ropeSin must both be given (RoPE on) or both be "
                    + "null (RoPE off); got ropeCos " + describeOrNull(ropeCos) + ", ropeSin "
                    + describeOrNull(ropeSin));
        }
        if (ropeCos != null) {
            if (dh % 2 != 0) {
                throw new ShapeException(op + ": RoPE rotates channel pairs, so dh must be even; qkv " + qkv.describe()
                        + " with " + heads + " heads has dh = " + dh);
            }
            Shapes.requireShape(op + ": ropeCos [T, dh]", ropeCos, t, dh);
            Shapes.requireShape(op + ": ropeSin [T, dh]", ropeSin, t, dh);
        }
        return dh;
    }

    /** A head tensor [B,H,T,dh] = {@code shape}, which came from {@code source} (named in the error). */
    public static void headTensor(String op, String role, Tensor t, int[] shape, String sourceRole, Tensor source) {
        Shapes.requireShape(op + ": " + role + " [B,H,T,dh] = " + Shapes.str(shape) + " for " + sourceRole + " "
                + source.describe(), t, shape);
    }

    /** The ρ of q and k saved by qkNormRope: [B,T,2,H]. */
    public static void qkRstd(String op, Tensor rstd, int batch, int tokens, int heads) {
        Shapes.requireShape(op + ": rstd [B,T,2,H]", rstd, batch, tokens, 2, heads);
    }

    /**
     * qkNormRope: the {@link #qkvInputs} rules, q, k, v [B,H,T,dh] apart from qkv and each other, and the optional rstd
     * (only with qk-norm on) [B,T,2,H] apart from all. Returns dh.
     */
    public static int qkNormRope(String op, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps,
                                 Tensor ropeCos, Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor rstd) {
        int dh = qkvInputs(op, qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin);
        int[] headShape = {qkv.dim(0), heads, qkv.dim(1), dh};
        headTensor(op, "q", q, headShape, "qkv", qkv);
        headTensor(op, "k", k, headShape, "qkv", qkv);
        headTensor(op, "v", v, headShape, "qkv", qkv);
        Shapes.requireNoSharing(op, q, qkv, k, v);
        Shapes.requireNoSharing(op, k, qkv, v);
        Shapes.requireNoSharing(op, v, qkv);
        if (rstd != null) {
            if (qWeight == null) {
                throw new IllegalArgumentException(op + ": rstd " + rstd.describe() + " was given but qk-norm is off "
                        + "(qWeight and kWeight are null), so there is no ρ to save");
            }
            qkRstd(op, rstd, qkv.dim(0), qkv.dim(1), heads);
            Shapes.requireNoSharing(op, rstd, qkv, q, k, v);
        }
        return dh;
    }

    // ---------------------------------------------------------------- dtypes of the bf16-activation forms
    // The forward ops below take bf16 activations where a bf16 GEMM produced them or consumes them (inference with
    /**
     * gatedResidualRmsNormModulate: the {@link #gatedResidual} rules (dtypes included), then the
     * {@link #rmsNormModulate} rules for the updated h with mod2, and out apart from h and a (h lives on as the
     * residual stream, so the in-place form of rmsNormModulate is not allowed here).
     */
    public static void gatedResidualRmsNormModulate(String op, Tensor h, Tensor a, Tensor mod, int gateChunk,
                                                    Tensor weight, float eps, Tensor mod2, int shiftChunk,
                                                    int scaleChunk, Tensor out, Tensor rstd) {
        gatedResidualDTypes(op, h, a);
        gatedResidual(op, h, a, mod, gateChunk);
        rmsNormDTypes(op, h, out);
        rmsNormModulate(op, h, weight, eps, mod2, shiftChunk, scaleChunk, out, rstd);
        Shapes.requireNoSharing(op, out, h, a);
        Shapes.requireNoSharing(op, h, weight, mod2);
    }

    // bf16 activations, see facm.autograd.ForwardPass): statistics, parameters and the residual stream stay f32.
    // Backward ops take f32 only; JVP ops take f32 inputs and may write bf16 outputs (jvpOutDTypes).

    /** rmsNormModulate: x, weight, mod and rstd f32; out f32 or bf16 (the fp32 value rounded once). */
    public static void rmsNormDTypes(String op, Tensor x, Tensor out) {
        Shapes.requireDType(op + ": x", x, DType.F32);
        Shapes.requireDType(op + ": out", out, DType.F32, DType.BF16);
    }

    /** gatedResidual: h and mod f32; a f32 or bf16 (widened exactly). */
    public static void gatedResidualDTypes(String op, Tensor h, Tensor a) {
        Shapes.requireDType(op + ": h", h, DType.F32);
        Shapes.requireDType(op + ": a", a, DType.F32, DType.BF16);
    }

    /**
     * swiglu: gu f32 or bf16 (widened exactly), out f32 or bf16 (the f32 result rounded once; a bf16 training pass
     * keeps an f32 gu for the backward and writes the w3 GEMM's bf16 operand directly).
     */
    public static void swigluDTypes(String op, Tensor gu, Tensor out) {
        Shapes.requireDType(op + ": gu", gu, DType.F32, DType.BF16);
        Shapes.requireDType(op + ": out", out, DType.F32, DType.BF16);
    }

    /**
     * The outputs of rmsNormModulateJvp and swigluJvp: out and outDot both f32, or both bf16 (the f32 values rounded
     * once: the operands of the next bf16 linear and of its tangent). Inputs and statistics stay f32.
     */
    public static void jvpOutDTypes(String op, Tensor out, Tensor outDot) {
        Shapes.requireDType(op + ": out", out, DType.F32, DType.BF16);
        Shapes.requireDType(op + ": outDot (like out " + out.describe() + ")", outDot, out.dtype());
    }

    /**
     * qkNormRope (and its JVP, whose qkv is f32): qkv f32 or bf16 (widened exactly), q, k, v all f32 or all bf16 (the
     * f32 results rounded once: tensor-core attention operands; a bf16 training pass keeps the f32 qkv for the
     * backward). Weights, tables and rstd stay f32.
     */
    public static void qkvDTypes(String op, Tensor qkv, Tensor q, Tensor k, Tensor v) {
        Shapes.requireDType(op + ": qkv", qkv, DType.F32, DType.BF16);
        Shapes.requireDType(op + ": q", q, DType.F32, DType.BF16);
        Shapes.requireDType(op + ": k (like q " + q.describe() + ")", k, q.dtype());
        Shapes.requireDType(op + ": v (like q " + q.describe() + ")", v, q.dtype());
    }

    /** eps of a normalization: finite and >= 0. */
    public static void requireEps(String op, float eps) {
        if (!(eps >= 0) || Float.isInfinite(eps)) {
            throw new IllegalArgumentException(op + ": eps must be finite and >= 0, got " + eps);
        }
    }

    /** "null" or the tensor's description, for errors about optional arguments. */
    public static String describeOrNull(Tensor t) {
        return t == null ? "null" : t.describe();
    }
}
