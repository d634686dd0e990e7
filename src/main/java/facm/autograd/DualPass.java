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
 * <p>Two ways per op: without a tape the fused NetworkOps JVP op writes the primal and the tangent in one call (its
 * primal is the forward op's, by the JVP contract). With a tape, the primal goes through the recording ForwardPass op
 * (which saves rstd/lse for its backward) and the JVP op runs beside it for the tangent only, its primal copy written
 * to a scratch tensor and discarded: correct, at the cost of computing the primal twice under a tape.
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
        this.primal = new ForwardPass(backend, precision, tape);
        this.tangents = new ForwardPass(backend, precision, null);
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

    private boolean fused() {
        return primal.tape() == null;
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

    /** A scratch copy of a primal the JVP op writes but the tape-recording path does not use. */
    private Tensor scratchLike(Tensor t) {
        return be.empty(t.name() + " (jvp scratch)", DType.F32, t.shape());
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

    /** Sinusoidal features of τ and their tangent along τ̇ (null: zero). */
    @Override
    public Dual timestepEmbedding(String name, Dual time, int dim, float maxPeriod) {
        Tensor t = time.primal();
        Tensor tDot = time.tangent();
        if (tDot == null) {
            return new Dual(primal.timestepEmbedding(name, t, dim, maxPeriod), null);
        }
        Tensor outDot = tangents.alloc(name + " tangent", DType.F32, t.dim(0), dim);
        Tensor out;
        if (fused()) {
            out = primal.alloc(name, DType.F32, t.dim(0), dim);
            net.timestepEmbeddingJvp(t, tDot, maxPeriod, out, outDot);
        } else {
            out = primal.timestepEmbedding(name, t, dim, maxPeriod);
            try (Tensor scratch = scratchLike(out)) {
                net.timestepEmbeddingJvp(t, tDot, maxPeriod, scratch, outDot);
            }
        }
        return new Dual(out, outDot);
    }

    @Override
    public Dual silu(String name, Dual x) {
        if (x.tangent() == null) {
            return new Dual(primal.silu(name, x.primal()), null);
        }
        Tensor outDot = tangents.alloc(name + " tangent", DType.F32, x.primal().shape());
        Tensor out;
        if (fused()) {
            out = primal.alloc(name, DType.F32, x.primal().shape());
            net.siluJvp(x.primal(), x.tangent(), out, outDot);
        } else {
            out = primal.silu(name, x.primal());
            try (Tensor scratch = scratchLike(out)) {
                net.siluJvp(x.primal(), x.tangent(), scratch, outDot);
            }
        }
        return new Dual(out, outDot);
    }

    /** RMSNorm with adaLN chunks of mod; the tangent always exists (the modulation's tangent is ṡ from τ̇). */
    @Override
    public Dual rmsNormModulate(String name, Dual x, Tensor weight, float eps, Dual mod, int shiftChunk,
                                int scaleChunk) {
        Tensor outDot = tangents.alloc(name + " tangent", DType.F32, x.primal().shape());
        Tensor out;
        if (fused()) {
            out = primal.alloc(name, DType.F32, x.primal().shape());
            net.rmsNormModulateJvp(x.primal(), x.tangent(), weight, eps, mod.primal(), mod.tangent(), shiftChunk,
                    scaleChunk, out, outDot, null);
        } else {
            out = primal.rmsNormModulate(name, x.primal(), weight, eps, mod.primal(), shiftChunk, scaleChunk);
            try (Tensor scratch = scratchLike(out)) {
                net.rmsNormModulateJvp(x.primal(), x.tangent(), weight, eps, mod.primal(), mod.tangent(), shiftChunk,
                        scaleChunk, scratch, outDot, null);
            }
        }
        return new Dual(out, outDot);
    }

    /**
     * h + gate ⊙ a; consumes h (primal as {@link ForwardPass#gatedResidual}, its tangent updated in place, made an
     * explicit tensor if it was zero).
     */
    @Override
    public Dual gatedResidual(Dual h, Dual a, Dual mod, int gateChunk) {
        Tensor hDot = h.tangent() != null ? h.tangent() : zeros("tangent " + h.primal().name(), h.primal().shape());
        if (fused()) {
            net.gatedResidualJvp(h.primal(), hDot, a.primal(), a.tangent(), mod.primal(), mod.tangent(), gateChunk);
            return new Dual(h.primal(), hDot);
        }
        try (Tensor scratch = scratchLike(h.primal())) {
            be.copy(h.primal(), scratch); // the tangent update reads h only through this copy
            net.gatedResidualJvp(scratch, hDot, a.primal(), a.tangent(), mod.primal(), mod.tangent(), gateChunk);
        }
        Tensor out = primal.gatedResidual(h.primal(), a.primal(), mod.primal(), gateChunk);
        return new Dual(out, hDot);
    }

    /** q, k, v as dual values. */
    @Override
    public Qkv<Dual> qkNormRope(String name, Dual qkv, int heads, Tensor qWeight, Tensor kWeight, float eps,
                                Tensor ropeCos, Tensor ropeSin) {
        int b = qkv.primal().dim(0);
        int t = qkv.primal().dim(1);
        int dh = qkv.primal().dim(2) / (3 * heads);
        Tensor qDot = tangents.alloc(name + ".q tangent", DType.F32, b, heads, t, dh);
        Tensor kDot = tangents.alloc(name + ".k tangent", DType.F32, b, heads, t, dh);
        Tensor vDot = tangents.alloc(name + ".v tangent", DType.F32, b, heads, t, dh);
        Tensor q;
        Tensor k;
        Tensor v;
        if (fused()) {
            q = primal.alloc(name + ".q", DType.F32, b, heads, t, dh);
            k = primal.alloc(name + ".k", DType.F32, b, heads, t, dh);
            v = primal.alloc(name + ".v", DType.F32, b, heads, t, dh);
            net.qkNormRopeJvp(qkv.primal(), qkv.tangent(), heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v,
                    qDot, kDot, vDot, null);
        } else {
            Qkv<Tensor> p = primal.qkNormRope(name, qkv.primal(), heads, qWeight, kWeight, eps, ropeCos, ropeSin);
            q = p.q();
            k = p.k();
            v = p.v();
            try (Tensor sq = scratchLike(q); Tensor sk = scratchLike(k); Tensor sv = scratchLike(v)) {
                net.qkNormRopeJvp(qkv.primal(), qkv.tangent(), heads, qWeight, kWeight, eps, ropeCos, ropeSin, sq, sk,
                        sv, qDot, kDot, vDot, null);
            }
        }
        return new Qkv<>(new Dual(q, qDot), new Dual(k, kDot), new Dual(v, vDot));
    }

    /** Softmax attention and its fused tangent (§6.4); output token-major {@code [B,T,H·dh]}. */
    @Override
    public Dual attention(String name, Dual qIn, Dual kIn, Dual vIn, float scale) {
        Tensor q = qIn.primal();
        int[] shape = {q.dim(0), q.dim(2), q.dim(1) * q.dim(3)};
        Tensor outDot = tangents.alloc(name + " tangent", DType.F32, shape);
        Tensor out;
        if (fused()) {
            out = primal.alloc(name, DType.F32, shape);
            net.attentionJvp(q, kIn.primal(), vIn.primal(), qIn.tangent(), kIn.tangent(), vIn.tangent(), scale, out,
                    outDot, null);
        } else {
            out = primal.attention(name, q, kIn.primal(), vIn.primal(), scale);
            try (Tensor scratch = scratchLike(out)) {
                net.attentionJvp(q, kIn.primal(), vIn.primal(), qIn.tangent(), kIn.tangent(), vIn.tangent(), scale,
                        scratch, outDot, null);
            }
        }
        return new Dual(out, outDot);
    }

    /** SiLU(g) ⊙ u of a fused [g; u] input. */
    @Override
    public Dual swiglu(String name, Dual gu) {
        int[] shape = gu.primal().shape();
        shape[shape.length - 1] /= 2;
        Tensor outDot = tangents.alloc(name + " tangent", DType.F32, shape);
        Tensor out;
        if (fused()) {
            out = primal.alloc(name, DType.F32, shape);
            net.swigluJvp(gu.primal(), gu.tangent(), out, outDot);
        } else {
            out = primal.swiglu(name, gu.primal());
            try (Tensor scratch = scratchLike(out)) {
                net.swigluJvp(gu.primal(), gu.tangent(), scratch, outDot);
            }
        }
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
