package facm.autograd;

import facm.autograd.LayerOps.Qkv;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;

/**
 * The LightningDiT layer ops of one {@link ForwardPass} (patchify, unpatchify, timestepEmbedding, embedding,
 * rmsNormModulate, gatedResidual, qkNormRope, attention, swiglu): each allocates its outputs in the pass's dtypes, runs the NetworkOps op (or the fused JVP op a
 * {@link DualPass} hands in), and with a recording tape saves what the op's backward needs and records that
 * backward. The pass owns the temporaries and the tape; this class holds the ops' bodies, as {@link LinearLayer}
 * holds the linears'.
 */
final class NetworkLayers {
    private final ForwardPass pass;
    private final Backend be;
    private final NetworkOps net;
    private final Tape tape;

    NetworkLayers(ForwardPass pass) {
        this.pass = pass;
        this.be = pass.backend();
        this.net = be.network();
        this.tape = pass.tape();
    }

    /** Patch layout [B,C,H,W] → [B, T, C·p²]. */
    Tensor patchify(Tensor x, int patch, int tokens, int features) {
        Tensor out = pass.alloc("patches", DType.F32, x.dim(0), tokens, features);
        net.patchify(x, patch, out);
        if (pass.recording(x)) {
            tape.record("patchify", () -> {
                Tensor gx = tape.newGradBuffer(x);
                net.patchifyBackward(tape.grad(out), patch, gx);
                tape.adoptGrad(x, gx);
            }, out);
        }
        return out;
    }

    /** Output layout [B, T, p²·C] → [B, C, H, W] with the spatial shape of {@code like}. */
    Tensor unpatchify(Tensor tokens, int patch, int[] outShape) {
        Tensor out = pass.alloc("F", DType.F32, outShape);
        net.unpatchify(tokens, patch, out);
        if (pass.recording(tokens)) {
            tape.record("unpatchify", () -> {
                Tensor g = tape.newGradBuffer(tokens);
                net.unpatchifyBackward(tape.grad(out), patch, g);
                tape.adoptGrad(tokens, g);
            }, out);
        }
        return out;
    }

    /** Sinusoidal time features (no gradient: time inputs are never tracked). */
    Tensor timestepEmbedding(String name, Tensor t, int dim, float maxPeriod) {
        if (tape != null && tape.requiresGrad(t)) {
            throw new UnsupportedOperationException("timestepEmbedding " + name + ": no gradient w.r.t. time");
        }
        Tensor out = pass.alloc(name, DType.F32, t.dim(0), dim);
        net.timestepEmbedding(t, maxPeriod, out);
        return out;
    }

    /** Rows of {@code table} picked by {@code ids}; the table's gradient accumulates per id. */
    Tensor embedding(String name, Tensor table, Tensor ids) {
        Tensor out = pass.alloc(name, DType.F32, ids.dim(0), table.dim(1));
        net.embedding(table, ids, out);
        if (pass.recording(table)) {
            requireParameter("embedding " + name, table);
            tape.record("embedding " + name, () -> net.embeddingBackward(tape.grad(out), ids,
                    tape.paramGrad(table)), out);
        }
        return out;
    }

    /** RMSNorm of x with adaLN chunks of mod (null: plain RMSNorm); saves x, mod and the row statistics. */
    Tensor rmsNormModulate(String name, Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk,
                                  int scaleChunk) {
        return rmsNormModulate(name, x, weight, eps, mod, shiftChunk, scaleChunk,
                (out, rstd) -> net.rmsNormModulate(x, weight, eps, mod, shiftChunk, scaleChunk, out, rstd));
    }

    Tensor rmsNormModulate(String name, Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk,
                           int scaleChunk, ForwardPass.Compute compute) {
        // A norm's output feeds a linear: bf16 in a bf16-activation pass (its operand, rounded once here).
        Tensor out = pass.alloc(name, pass.dtypes().operandType(DType.BF16), x.shape());
        boolean rec = pass.recording(x, weight, mod);
        Tensor rstd = rec ? tape.save(pass.alloc(name + ".rstd", DType.F32, (int) (x.numel() / x.dim(-1)))) : null;
        compute.run(out, rstd);
        if (rec) {
            requireParameter("rmsNorm " + name, weight);
            pass.saveForBackward(x);
            if (mod != null) {
                pass.saveForBackward(mod);
            }
            tape.record("rmsNorm " + name, () -> {
                Tensor gx = tape.requiresGrad(x) ? tape.newGradBuffer(x) : null;
                Tensor gMod = tape.requiresGrad(mod) ? tape.gradForAccumulation(mod) : null;
                net.rmsNormModulateBackward(x, weight, eps, mod, shiftChunk, scaleChunk, rstd, tape.grad(out), gx,
                        tape.paramGrad(weight), gMod);
                if (gx != null) {
                    tape.adoptGrad(x, gx);
                }
            }, out);
        }
        return out;
    }

    /**
     * The residual update h + gate ⊙ a (gate = chunk of mod). Consumes h (a temporary of this pass): without a
     * recording tape it is updated in place and returned; with one, a new tensor is returned and the old h stays
     * with the tape if an earlier op saved it.
     */
    Tensor gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk) {
        return gatedResidual(h, a, mod, gateChunk, target -> net.gatedResidual(target, a, mod, gateChunk));
    }

    /** As {@link #gatedResidual(Tensor, Tensor, Tensor, int)}, the in-place update of the residual done by update. */
    Tensor gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk, java.util.function.Consumer<Tensor> update) {
        if (!pass.recording(h, a, mod)) {
            update.accept(h);
            return h;
        }
        Tensor out = pass.alloc(h.name(), DType.F32, h.shape());
        be.copy(h, out);
        update.accept(out);
        pass.release(h);
        pass.saveForBackward(a);
        pass.saveForBackward(mod);
        tape.record("gatedResidual " + h.name(), () -> {
            Tensor g = tape.grad(out);
            Tensor ga = tape.requiresGrad(a) ? tape.newGradBuffer(a) : null;
            Tensor gMod = tape.requiresGrad(mod) ? tape.gradForAccumulation(mod) : null;
            net.gatedResidualBackward(a, mod, gateChunk, g, ga, gMod);
            if (ga != null) {
                tape.adoptGrad(a, ga);
            }
            tape.adoptGrad(h, tape.takeGrad(out)); // dh = d(out): the same buffer moves on
        }, out);
        return out;
    }

    /**
     * The tape-less fused residual + norm: h updated in place, the norm's output allocated as rmsNormModulate's
     * (bf16 in a bf16-activation pass), no rstd (nothing records a backward).
     */
    LayerOps.ResidualNorm<Tensor> gatedResidualRmsNormModulate(String name, Tensor h, Tensor a, Tensor mod,
                                                               int gateChunk, Tensor weight, float eps, Tensor mod2,
                                                               int shiftChunk, int scaleChunk) {
        Tensor out = pass.alloc(name, pass.dtypes().operandType(DType.BF16), h.shape());
        net.gatedResidualRmsNormModulate(h, a, mod, gateChunk, weight, eps, mod2, shiftChunk, scaleChunk, out, null);
        return new LayerOps.ResidualNorm<>(h, out);
    }

    /** q, k, v {@code [B,H,T,dh]} from a fused qkv projection (qk-norm and RoPE applied to q and k). */
    Qkv<Tensor> qkNormRope(String name, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps,
                                  Tensor ropeCos, Tensor ropeSin) {
        return qkNormRope(name, qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin,
                (q, k, v, rstd) -> net.qkNormRope(qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, rstd));
    }

    Qkv<Tensor> qkNormRope(String name, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps,
                           Tensor ropeCos, Tensor ropeSin, ForwardPass.QkvCompute compute) {
        int b = qkv.dim(0);
        int t = qkv.dim(1);
        int dh = qkv.dim(2) / (3 * heads);
        DType headType = pass.dtypes().headType(qkv.dtype());
        Tensor q = pass.alloc(name + ".q", headType, b, heads, t, dh);
        Tensor k = pass.alloc(name + ".k", headType, b, heads, t, dh);
        Tensor v = pass.alloc(name + ".v", headType, b, heads, t, dh);
        boolean rec = pass.recording(qkv, qWeight, kWeight);
        Tensor rstd = rec && qWeight != null ? tape.save(pass.alloc(name + ".rstd", DType.F32, b, t, 2, heads)) : null;
        compute.run(q, k, v, rstd);
        if (rec) {
            pass.saveForBackward(qkv);
            tape.record("qkNormRope " + name, () -> {
                Tensor gq = gradOrZeros(q);
                Tensor gk = gradOrZeros(k);
                Tensor gv = gradOrZeros(v);
                Tensor gQkv = tape.requiresGrad(qkv) ? tape.newGradBuffer(qkv) : null;
                net.qkNormRopeBackward(qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, rstd, gq, gk, gv, gQkv,
                        tape.paramGrad(qWeight), tape.paramGrad(kWeight));
                if (gQkv != null) {
                    tape.adoptGrad(qkv, gQkv);
                }
            }, q, k, v);
        }
        return new Qkv<>(q, k, v);
    }

    private Tensor gradOrZeros(Tensor t) {
        return tape.grad(t) != null ? tape.grad(t) : tape.gradForAccumulation(t);
    }

    /** Softmax attention, token-major output {@code [B,T,H·dh]}; saves q, k, v, the output and the log-sum-exp. */
    Tensor attention(String name, Tensor q, Tensor k, Tensor v, float scale) {
        return attention(name, q, k, v, scale, (out, lse) -> net.attention(q, k, v, scale, out, lse));
    }

    Tensor attention(String name, Tensor q, Tensor k, Tensor v, float scale, ForwardPass.Compute compute) {
        int b = q.dim(0);
        int heads = q.dim(1);
        int t = q.dim(2);
        int dh = q.dim(3);
        Tensor out = pass.alloc(name, pass.dtypes().attentionOutType(q.dtype()), b, t, heads * dh);
        boolean rec = pass.recording(q, k, v);
        Tensor lse = rec ? tape.save(pass.alloc(name + ".lse", DType.F32, b, heads, t)) : null;
        compute.run(out, lse);
        if (rec) {
            pass.saveForBackward(q);
            pass.saveForBackward(k);
            pass.saveForBackward(v);
            pass.saveForBackward(out);
            tape.record("attention " + name, () -> {
                Tensor gq = tape.newGradBuffer(q);
                Tensor gk = tape.newGradBuffer(k);
                Tensor gv = tape.newGradBuffer(v);
                net.attentionBackward(q, k, v, scale, out, lse, tape.grad(out), gq, gk, gv);
                tape.adoptGrad(q, gq);
                tape.adoptGrad(k, gk);
                tape.adoptGrad(v, gv);
            }, out);
        }
        return out;
    }

    /** SiLU(g) ⊙ u of a fused [g; u] input {@code [..., 2F]} → {@code [..., F]}; saves the input. */
    Tensor swiglu(String name, Tensor gu) {
        return swiglu(name, gu, out -> net.swiglu(gu, out));
    }

    Tensor swiglu(String name, Tensor gu, java.util.function.Consumer<Tensor> compute) {
        int[] shape = gu.shape();
        shape[shape.length - 1] /= 2;
        Tensor out = pass.alloc(name, pass.dtypes().operandType(gu.dtype()), shape);
        compute.accept(out);
        if (pass.recording(gu)) {
            pass.saveForBackward(gu);
            tape.record("swiglu " + name, () -> {
                Tensor g = tape.newGradBuffer(gu);
                net.swigluBackward(gu, tape.grad(out), g);
                tape.adoptGrad(gu, g);
            }, out);
        }
        return out;
    }


    void requireParameter(String op, Tensor weight) {
        if (weight != null && tape.requiresGrad(weight) && tape.paramGrad(weight) == null) {
            throw new UnsupportedOperationException(op + ": " + weight.describe()
                    + " is tracked but not a parameter; only parameter weights get gradients here");
        }
    }
}
