package facm.autograd;

import facm.tensor.Backend;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;

import java.util.function.Consumer;

/**
 * The elementwise ops of one {@link ForwardPass} (silu, add, addConstantInPlace): each allocates its output, runs
 * the backend op (or the fused JVP op a {@link DualPass} hands in), and with a recording tape saves what the op's
 * backward needs and records that backward. The pass owns the temporaries and the tape; this class holds the ops'
 * bodies, as {@link NetworkLayers} holds the network layers'.
 */
final class ElementwiseLayers {
    private final ForwardPass pass;
    private final Backend be;
    private final NetworkOps net;
    private final Tape tape;

    ElementwiseLayers(ForwardPass pass) {
        this.pass = pass;
        this.be = pass.backend();
        this.net = be.network();
        this.tape = pass.tape();
    }

    /** SiLU with the output computed by {@code compute}; backward gradIn = gradOut·SiLU'(x), in place. */
    Tensor silu(String name, Tensor x, Consumer<Tensor> compute) {
        Tensor out = pass.alloc(name, DType.F32, x.shape());
        compute.accept(out);
        if (pass.recording(x)) {
            pass.saveForBackward(x);
            tape.record("silu " + name, () -> {
                Tensor g = tape.takeGrad(out);
                net.siluBackward(x, g, g);
                tape.adoptGrad(x, g);
            }, out);
        }
        return out;
    }

    /** a + b, same shapes (a broadcast b must not need a gradient); gradients pass through unchanged. */
    Tensor add(String name, Tensor a, Tensor b) {
        boolean rec = pass.recording(a, b);
        if (rec && tape.requiresGrad(b) && !a.sameShape(b)) {
            throw new UnsupportedOperationException("add " + name + ": no gradient for the broadcast operand "
                    + b.describe());
        }
        Tensor out = pass.alloc(name, DType.F32, a.shape());
        be.binary(BinaryOp.ADD, a, b, out);
        if (rec) {
            tape.record("add " + name, () -> {
                Tensor g = tape.takeGrad(out);
                tape.accumulateGrad(b, g);
                tape.adoptGrad(a, g);
            }, out);
        }
        return out;
    }

    /** a += b in place for a constant b; nothing is recorded (see {@link ForwardPass#addConstantInPlace}). */
    void addConstantInPlace(Tensor a, Tensor b) {
        if (tape != null && (tape.requiresGrad(b) || tape.owns(a))) {
            throw new IllegalStateException("addConstantInPlace: " + b.describe() + " needs a gradient or "
                    + a.describe() + " is saved for a backward");
        }
        be.binary(BinaryOp.ADD, a, b, a);
    }
}
