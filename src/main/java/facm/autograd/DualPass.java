package facm.autograd;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;

/**
 * A forward-mode (JVP) pass, facm-spec.md §6: every value is a {@link Dual} (primal + tangent) and each op computes
 * both, layer by layer. The primal runs on a {@link ForwardPass} (so with a tape it records exactly as a plain forward
 * does, and gradients flow through the primal only, §6.1); tangents are temporaries of a second, tape-less pass and
 * are never saved: release them as soon as the next op has consumed them.
 *
 * <p>Each nonlinear op runs once: the fused NetworkOps JVP op writes the primal (the forward op's, by the JVP
 * contract), its tangent and, when the primal pass records on a tape, the statistics its backward needs (rstd, lse)
 * into the tensors the recording {@link ForwardPass} op allocated; that op then records the usual backward. So a JVP
 * pass under a tape costs one primal plus the tangent, not two primals.
 *
 * <p>It implements {@link LayerOps} with {@code V = Dual}, so a model written against LayerOps runs here unchanged.
 *
 * <p>Linear layers: tangent = W·ẋ (no bias) in the pass's GEMM precision; patchify/unpatchify/additions apply the
 * same linear map to the tangent; embeddings and constant tables have zero tangent.
 */
public final class DualPass implements AutoCloseable, LayerOps<Dual> {
    private final ForwardPass primal;
    private final ForwardPass tangents;
    private final Backend be;
    private final NetworkOps net;

    /** A pass on {@code backend}; {@code tape} may be null (no gradients through the primal). */
    public DualPass(Backend backend, GemmPrecision precision, Tape tape) {
        this(backend, precision, tape, null);
    }

    /**
     * As {@link #DualPass(Backend, GemmPrecision, Tape)}, with BF16 {@code forms} (null: none; only for BF16
     * precision): the fused JVP ops write the primal and the tangent in bf16 where the primal pass's forms say a
     * bf16 GEMM operand (norms, swiglu; heads and attention with {@link ForwardPass.Bf16Training#attention}), the
     * same bits the linears' casts would make.
     */
    public DualPass(Backend backend, GemmPrecision precision, Tape tape, ForwardPass.Bf16Training forms) {
        if (forms != null && precision != GemmPrecision.BF16) {
            throw new IllegalArgumentException("DualPass: bf16 forms " + forms + " need BF16 precision, not "
                    + precision);
        }
        this.primal = forms == null ? new ForwardPass(backend, precision, tape)
                : ForwardPass.bf16Training(backend, tape, forms);
        this.tangents = forms == null ? new ForwardPass(backend, precision, null)
                : ForwardPass.bf16Training(backend, null, forms);
        // ẏ = ẋ·Wᵀ right after y = x·Wᵀ + b: the primal's bf16 copy of W serves both (closed after the tangents).
        tangents.borrowWeightCopiesFrom(primal);
        this.be = backend;
        this.net = backend.network();
    }

    /** The pass the primal runs (and records) on. */
    public ForwardPass primal() {
        return primal;
    }

    public Backend backend() {
        return be;
    }

    // ---------------------------------------------------------------- ownership

    /** Frees the primal (unless the tape saved it) and the tangent of this value. */
    @Override
    public void release(Dual d) {
        if (d != null) {
            primal.release(d.primal());
            tangents.release(d.tangent());
        }
    }

    /** Frees tangents that are no longer needed (their primals stay). */
    public void releaseTangents(Tensor... ts) {
        tangents.release(ts);
    }

    /** Hands primal and tangent to the caller; a null tangent becomes an explicit zero tensor. */
    @Override
    public Dual keep(Dual d) {
        Tensor t = d.tangent() != null ? d.tangent() : zeros("tangent " + d.primal().name(), d.primal().shape());
        return new Dual(primal.keep(d.primal()), tangents.keep(t));
    }

    private Tensor zeros(String name, int... shape) {
        Tensor z = tangents.alloc(name, DType.F32, shape);
        be.fill(z, 0f);
        return z;
    }

    // ---------------------------------------------------------------- linear maps

    /** y = x·Wᵀ + b, ẏ = ẋ·Wᵀ (null ẋ: null ẏ). */
    @Override
    public Dual linear(String name, Dual x, Tensor weight, Tensor bias) {
        Tensor y = primal.linear(name, x.primal(), weight, bias);
        Tensor yDot = x.tangent() == null ? null : tangents.linear(name + " tangent", x.tangent(), weight, null);
        return new Dual(y, yDot);
    }

    @Override
    public Dual patchify(Dual x, int patch, int tokens, int features) {
        Tensor p = primal.patchify(x.primal(), patch, tokens, features);
        Tensor pDot = x.tangent() == null ? null : tangents.patchify(x.tangent(), patch, tokens, features);
        return new Dual(p, pDot);
    }

    @Override
    public Dual unpatchify(Dual tokens, int patch, int[] outShape) {
        Tensor o = primal.unpatchify(tokens.primal(), patch, outShape);
        Tensor oDot = tokens.tangent() == null ? null : tangents.unpatchify(tokens.tangent(), patch, outShape);
        return new Dual(o, oDot);
    }

    /** a + b (same shapes); the tangent is ȧ + ḃ, a copy when only one is non-zero (tangents are never aliased). */
    @Override
    public Dual add(String name, Dual a, Dual b) {
        Tensor sum = primal.add(name, a.primal(), b.primal());
        Tensor sumDot;
        if (a.tangent() != null && b.tangent() != null) {
            sumDot = tangents.add(name + " tangent", a.tangent(), b.tangent());
        } else if (a.tangent() != null || b.tangent() != null) {
            Tensor only = a.tangent() != null ? a.tangent() : b.tangent();
            sumDot = tangents.alloc(name + " tangent", DType.F32, only.shape());
            be.copy(only, sumDot);
        } else {
            sumDot = null;
        }
        return new Dual(sum, sumDot);
    }

    /** a += constant b (zero tangent, so the tangent is unchanged). */
    @Override
    public void addConstantInPlace(Dual a, Tensor b) {
        primal.addConstantInPlace(a.primal(), b);
    }

    /** Embedding rows: labels and tables carry no tangent. */
    @Override
    public Dual embedding(String name, Tensor table, Tensor ids) {
        return new Dual(primal.embedding(name, table, ids), null);
    }

    // ---------------------------------------------------------------- nonlinear ops (NetworkOps JVP)

    /**
     * Sinusoidal features of τ and their tangent along τ̇ (null: zero). The time input never needs a gradient (it is
     * data, not a parameter), so nothing is recorded and the fused JVP op serves both cases.
     */
    @Override
    public Dual timestepEmbedding(String name, Dual time, int dim, float maxPeriod) {
        Tensor t = time.primal();
        Tensor tDot = time.tangent();
        if (tDot == null || primal.recording(t)) {
            return tDot == null ? new Dual(primal.timestepEmbedding(name, t, dim, maxPeriod), null)
                    : unsupportedTrackedTime(t);
        }
        Tensor outDot = tangents.alloc(name + " tangent", DType.F32, t.dim(0), dim);
        Tensor out = primal.alloc(name, DType.F32, t.dim(0), dim);
        net.timestepEmbeddingJvp(t, tDot, maxPeriod, out, outDot);
        return new Dual(out, outDot);
    }

    private static Dual unsupportedTrackedTime(Tensor t) {
        throw new UnsupportedOperationException("timestepEmbedding JVP: the time input " + t.describe()
                + " is tracked by the tape; time inputs get no gradient");
    }

    @Override
    public Dual silu(String name, Dual x) {
        if (x.tangent() == null) {
            return new Dual(primal.silu(name, x.primal()), null);
        }
        Tensor outDot = tangents.alloc(name + " tangent", DType.F32, x.primal().shape());
        Tensor out = primal.silu(name, x.primal(), o -> net.siluJvp(x.primal(), x.tangent(), o, outDot));
        return new Dual(out, outDot);
    }

    /** RMSNorm with adaLN chunks of mod; the tangent always exists (the modulation's tangent is ṡ from τ̇). */
    @Override
    public Dual rmsNormModulate(String name, Dual x, Tensor weight, float eps, Dual mod, int shiftChunk,
                                int scaleChunk) {
        Tensor outDot = tangents.alloc(name + " tangent", primal.dtypes().operandType(DType.BF16), x.primal().shape());
        Tensor out = primal.rmsNormModulate(name, x.primal(), weight, eps, mod.primal(), shiftChunk, scaleChunk,
                (o, rstd) -> net.rmsNormModulateJvp(x.primal(), x.tangent(), weight, eps, mod.primal(),
                        mod.tangent(), shiftChunk, scaleChunk, o, outDot, rstd));
        return new Dual(out, outDot);
    }

    /**
     * h + gate ⊙ a; consumes h (primal as {@link ForwardPass#gatedResidual}, its tangent updated in place, made an
     * explicit tensor if it was zero). The JVP op updates the residual it is given (h itself, or the recording
     * pass's copy of it) and h's tangent together.
     */
    @Override
    public Dual gatedResidual(Dual h, Dual a, Dual mod, int gateChunk) {
        Tensor hDot = h.tangent() != null ? h.tangent() : zeros("tangent " + h.primal().name(), h.primal().shape());
        Tensor out = primal.gatedResidual(h.primal(), a.primal(), mod.primal(), gateChunk,
                target -> net.gatedResidualJvp(target, hDot, a.primal(), a.tangent(), mod.primal(), mod.tangent(),
                        gateChunk));
        return new Dual(out, hDot);
    }

    /** q, k, v as dual values. */
    @Override
    public Qkv<Dual> qkNormRope(String name, Dual qkv, int heads, Tensor qWeight, Tensor kWeight, float eps,
                                Tensor ropeCos, Tensor ropeSin) {
        int b = qkv.primal().dim(0);
        int t = qkv.primal().dim(1);
        int dh = qkv.primal().dim(2) / (3 * heads);
        DType headType = primal.dtypes().headType(qkv.primal().dtype());
        Tensor qDot = tangents.alloc(name + ".q tangent", headType, b, heads, t, dh);
        Tensor kDot = tangents.alloc(name + ".k tangent", headType, b, heads, t, dh);
        Tensor vDot = tangents.alloc(name + ".v tangent", headType, b, heads, t, dh);
        Qkv<Tensor> p = primal.qkNormRope(name, qkv.primal(), heads, qWeight, kWeight, eps, ropeCos, ropeSin,
                (q, k, v, rstd) -> net.qkNormRopeJvp(qkv.primal(), qkv.tangent(), heads, qWeight, kWeight, eps,
                        ropeCos, ropeSin, q, k, v, qDot, kDot, vDot, rstd));
        return new Qkv<>(new Dual(p.q(), qDot), new Dual(p.k(), kDot), new Dual(p.v(), vDot));
    }

    /** Softmax attention and its fused tangent (§6.4); output token-major {@code [B,T,H·dh]}. */
    @Override
    public Dual attention(String name, Dual qIn, Dual kIn, Dual vIn, float scale) {
        Tensor q = qIn.primal();
        int[] shape = {q.dim(0), q.dim(2), q.dim(1) * q.dim(3)};
        Tensor outDot = tangents.alloc(name + " tangent", primal.dtypes().attentionOutType(q.dtype()), shape);
        Tensor out = primal.attention(name, q, kIn.primal(), vIn.primal(), scale,
                (o, lse) -> net.attentionJvp(q, kIn.primal(), vIn.primal(), qIn.tangent(), kIn.tangent(),
                        vIn.tangent(), scale, o, outDot, lse));
        return new Dual(out, outDot);
    }

    /** SiLU(g) ⊙ u of a fused [g; u] input. */
    @Override
    public Dual swiglu(String name, Dual gu) {
        int[] shape = gu.primal().shape();
        shape[shape.length - 1] /= 2;
        Tensor outDot = tangents.alloc(name + " tangent", primal.dtypes().operandType(gu.primal().dtype()), shape);
        Tensor out = primal.swiglu(name, gu.primal(), o -> net.swigluJvp(gu.primal(), gu.tangent(), o, outDot));
        return new Dual(out, outDot);
    }

    /** Frees whatever primals (not saved by the tape) and tangents are left, and the passes' bf16 weight copies. */
    @Override
    public void close() {
        try {
            tangents.close();
        } finally {
            primal.close();
        }
    }
}
