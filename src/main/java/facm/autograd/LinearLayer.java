package facm.autograd;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.ReduceOp;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * The linear layers of one {@link ForwardPass}: y = x·Wᵀ + b and its backward, in the pass's GEMM precision.
 *
 * <p>BF16 mixed precision: x and W are cast to bf16 right before the product, which accumulates in fp32 and writes
 * fp32 y; the bias add stays fp32. A weight's bf16 copy is made once per pass (cast on first use, kept for the pass)
 * and the backward GEMMs use bf16 too: dX = bf16(dY)·bf16(W), dW += bf16(dY)ᵀ·bf16(X) into the fp32 gradient;
 * db = Σ_rows dY in fp32. The tape keeps the bf16 copies of X and W (what the backward multiplies) instead of fp32
 * originals, which halves the memory of linear inputs that nothing else needs. FP32/TF32: the tape keeps X itself.
 *
 * <p>A bf16 x (written by its producer as this GEMM's operand in a {@link ForwardPass#bf16Training} pass: the same
 * bits the cast would make) is used as it is, and the tape keeps x itself for the weight gradient.
 *
 * <p>A pass with bf16 activations ({@link ForwardPass#bf16Inference}) takes bf16 inputs as they are, writes bf16
 * outputs where its input was bf16 and fuses the bias into the product ({@link #inference}).
 */
final class LinearLayer implements AutoCloseable {
    private final ForwardPass pass;
    private final Backend be;
    private final GemmPrecision precision;
    private final Tape tape;
    private final Map<Tensor, Tensor> bf16Weights = new IdentityHashMap<>();
    /** Another pass's linears whose bf16 weight copies this one uses instead of casting its own, or null. */
    private LinearLayer weightLender;

    LinearLayer(ForwardPass pass) {
        this.pass = pass;
        this.be = pass.backend();
        this.precision = pass.precision();
        this.tape = pass.tape();
    }

    /**
     * Takes the bf16 weight copies of {@code lender} (a pass that lives at least as long as this one and runs its
     * linears first, as the primal pass of a {@link DualPass} does for its tangent pass) where it has one, instead of
     * casting the same weight again: the same bits, one cast per weight less. Only for uses that this pass's tape
     * does not save (the lender owns the copy and frees it).
     */
    void borrowWeightCopiesFrom(LinearLayer lender) {
        this.weightLender = lender;
    }

    /** {@link ForwardPass#linear}. */
    Tensor forward(String name, Tensor x, Tensor weight, Tensor bias) {
        int outF = weight.dim(0);
        int in = (int) (weight.numel() / outF);
        if (x.dim(-1) != in) {
            throw new ShapeException("linear " + name + ": x " + x.describe() + " does not fit weight "
                    + weight.describe());
        }
        int rows = (int) (x.numel() / in);
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = outF;
        if (pass.bf16Forms() != null) {
            return inference(name, x, weight, bias, rows, in, outF, outShape, pass.bf16Forms());
        }
        Tensor out = pass.alloc(name, DType.F32, outShape);
        boolean rec = pass.recording(x, weight, bias);
        boolean needDx = rec && tape.requiresGrad(x);
        boolean needDw = rec && tape.requiresGrad(weight);
        Tensor w2 = gemmWeight(weight, outF, in, needDx);
        Tensor x2 = gemmInput(x, rows, in, needDw);
        Tensor out2 = out.reshape(rows, outF);
        if (bias != null) {
            // Backend.linear: the product, then the f32 bias add (the CPU, FP32/TF32); on CUDA a BF16 product takes
            // the bias in cuBLASLt's epilogue instead of a separate pass over out (same fp32 sum, possibly another
            // accumulation order, within the tolerances of CudaBf16ActivationsTest).
            be.linear(x2, w2, bias, out2, precision);
        } else {
            be.gemm(x2, false, w2, true, out2, 1f, 0f, precision);
        }
        if (x.dtype() != DType.BF16 && x2.dtype() == DType.BF16 && !needDw) {
            x2.close(); // the cast of x was only needed for this product
        }
        if (rec) {
            tape.record("linear " + name, () -> linearBackward(x, weight, bias, w2, x2, out, rows, in, outF), out);
        }
        return out;
    }

    /**
     * A linear of a bf16-activation pass (no tape): a bf16 x is the GEMM operand as it is, an f32 x is cast once;
     * the output is bf16 when x is (unless the weight is one of {@link ForwardPass.Bf16Forms#f32Outputs}), and the
     * bias is fused into the product by {@link Backend#linear} (a bf16 copy of it for a bf16 output, the bias type
     * the fused epilogue takes).
     */
    private Tensor inference(String name, Tensor x, Tensor weight, Tensor bias, int rows, int in, int outF,
                             int[] outShape, ForwardPass.Bf16Forms forms) {
        boolean bf16Out = x.dtype() == DType.BF16 && !forms.f32Outputs().contains(weight);
        Tensor out = pass.alloc(name, bf16Out ? DType.BF16 : DType.F32, outShape);
        Tensor w2 = bf16Copy(weight, forms).reshape(outF, in);
        Tensor x2 = x.dtype() == DType.BF16 ? x.reshape(rows, in) : be.convert(x.reshape(rows, in), DType.BF16);
        try {
            Tensor b2 = bias == null || !bf16Out ? bias : bf16Copy(bias, forms);
            be.linear(x2, w2, b2, out.reshape(rows, outF), GemmPrecision.BF16);
        } finally {
            if (x2.dtype() == DType.BF16 && x.dtype() != DType.BF16) {
                x2.close();
            }
        }
        return out;
    }

    /** The bf16 copy of a weight or bias: the pass's weight cache's, or one cast for this pass (freed by close). */
    private Tensor bf16Copy(Tensor t, ForwardPass.Bf16Forms forms) {
        if (forms.weightCache() != null) {
            return forms.weightCache().apply(t);
        }
        Tensor cast = bf16Weights.get(t);
        if (cast == null) {
            cast = be.convert(t, DType.BF16);
            bf16Weights.put(t, cast);
        }
        return cast;
    }

    private void linearBackward(Tensor x, Tensor weight, Tensor bias, Tensor w2, Tensor x2, Tensor out, int rows,
                                int in, int outF) {
        Tensor gOut = tape.grad(out).reshape(rows, outF);
        Tensor gOp = gOut;
        Tensor gb = tape.paramGrad(bias);
        if (precision == GemmPrecision.BF16) {
            gOp = be.empty("grad " + out.name() + " bf16", DType.BF16, rows, outF);
        }
        // The bf16 operand and the bias gradient in one read of dY where the backend can (the CUDA one can).
        if (gOp != gOut || gb != null) {
            be.linearBiasGradient(gOut, gOp != gOut ? gOp : null, gb);
        }
        try {
            if (tape.requiresGrad(x)) {
                Tensor existing = tape.grad(x);
                if (existing != null) {
                    be.gemm(gOp, false, w2, false, existing.reshape(rows, in), 1f, 1f, precision);
                } else {
                    Tensor gx = tape.newGradBuffer(x);
                    be.gemm(gOp, false, w2, false, gx.reshape(rows, in), 1f, 0f, precision);
                    tape.adoptGrad(x, gx);
                }
            }
            Tensor gw = tape.paramGrad(weight);
            if (gw != null) {
                be.gemm(gOp, true, x2, false, gw.reshape(outF, in), 1f, 1f, precision);
            }
        } finally {
            if (gOp != gOut) {
                gOp.close();
            }
        }
    }

    /** The weight as the GEMM takes it: a 2-D view (fp32), or its bf16 copy made once per pass. */
    private Tensor gemmWeight(Tensor weight, int outF, int in, boolean neededByBackward) {
        if (precision != GemmPrecision.BF16) {
            return weight.rank() == 2 ? weight : weight.reshape(outF, in);
        }
        Tensor borrowed = neededByBackward || weightLender == null ? null : weightLender.bf16Weights.get(weight);
        if (borrowed != null && !borrowed.isClosed()) {
            return borrowed;
        }
        Tensor cast = bf16Weights.get(weight);
        if (cast == null) {
            cast = be.empty(weight.name() + " bf16", DType.BF16, outF, in);
            be.convert(weight.reshape(outF, in), cast);
            bf16Weights.put(weight, cast);
        }
        if (neededByBackward) {
            tape.save(cast);
        }
        return cast;
    }

    /**
     * x as a 2-D GEMM operand: a view of x (fp32, or a bf16 x that its producer wrote as this GEMM's operand) or a
     * fresh bf16 cast; saved when the weight gradient needs it (x itself, so its producer's release keeps it).
     */
    private Tensor gemmInput(Tensor x, int rows, int in, boolean neededByBackward) {
        if (precision != GemmPrecision.BF16 || x.dtype() == DType.BF16) {
            if (x.dtype() == DType.BF16 && precision != GemmPrecision.BF16) {
                throw new IllegalArgumentException("linear: a bf16 input " + x.describe() + " needs BF16 precision, not "
                        + precision);
            }
            if (neededByBackward) {
                pass.saveForBackward(x);
            }
            return x.reshape(rows, in);
        }
        Tensor cast = be.empty(x.name() + " bf16", DType.BF16, rows, in);
        be.convert(x.reshape(rows, in), cast);
        if (neededByBackward) {
            tape.save(cast);
        }
        return cast;
    }

    /** Frees the bf16 weight copies the tape did not save. */
    @Override
    public void close() {
        for (Tensor c : bf16Weights.values()) {
            if (!pass.savedByTape(c)) {
                c.close();
            }
        }
        bf16Weights.clear();
    }
}
