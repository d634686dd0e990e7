package facm.autograd;

import facm.tensor.Tensor;

import java.util.Collection;

/**
 * Activation checkpointing of one residual block (issue 7 item 3, the train flag {@code --checkpoint-blocks}): the
 * block's forward runs without recording, and the tape of the enclosing pass keeps only the block's input h and the
 * conditioning it reads; when the backward reaches the block, its forward is recomputed on a tape of its own (the
 * same ops on the same inputs, so the same values) and that tape's backward pushes the block's output gradient to
 * h, the conditioning and the block's parameters. Memory: one block's saved activations at a time instead of every
 * block's; compute: one more forward of each block.
 *
 * <p>Gradients are the same to the bit as without checkpointing: the recomputation repeats the forward's operations
 * exactly, the local backward runs the block's backward ops in the same order, and the two sums that change form
 * (the conditioning's gradient added after the block's GEMM instead of inside it with beta = 1, and h's gradient
 * handed over) each add the same two fp32 values once.
 */
public final class CheckpointedBlock {

    /** The block: consumes h (a temporary of {@code pass}) and returns the updated residual stream. */
    @FunctionalInterface
    public interface Block {
        Tensor apply(ForwardPass pass, Tensor h, Tensor cond);
    }

    private CheckpointedBlock() {
    }

    /**
     * Runs {@code block} on {@code pass} checkpointed (or plainly when the pass records nothing): consumes h like the
     * block does and returns the block's output, a temporary of {@code pass}. {@code parameters} are every tensor
     * the block may need a gradient for; those the pass's tape tracks get their gradients accumulated as usual.
     */
    public static Tensor run(ForwardPass pass, String name, Tensor h, Tensor cond, Collection<Tensor> parameters,
                             Block block) {
        Tape tape = pass.tape();
        if (tape == null || !(pass.recording(h, cond) || pass.recording(parameters.toArray(Tensor[]::new)))) {
            return block.apply(pass, h, cond);
        }
        Tensor out;
        try (ForwardPass untracked = pass.sibling(null)) {
            // Without a tape the block updates its residual in place: give it a copy, h stays for the recompute.
            Tensor hCopy = untracked.alloc(h.name(), h.dtype(), h.shape());
            pass.backend().copy(h, hCopy);
            out = untracked.keep(block.apply(untracked, hCopy, cond));
        }
        pass.adopt(out);
        pass.saveForBackward(h);
        pass.saveForBackward(cond);
        pass.release(h); // consumed, as by the block itself; the tape keeps it
        tape.record("checkpointed " + name, () -> backward(pass, h, cond, parameters, block, out), out);
        return out;
    }

    /** Recomputes the block on a local tape and runs its backward from the gradient of {@code out}. */
    private static void backward(ForwardPass pass, Tensor h, Tensor cond, Collection<Tensor> parameters, Block block,
                                 Tensor out) {
        Tape tape = pass.tape();
        try (Tape local = new Tape(pass.backend())) {
            for (Tensor p : parameters) {
                Tensor g = tape.paramGrad(p);
                if (g != null) {
                    local.trackParameter(p, g);
                }
            }
            boolean hGrad = tape.requiresGrad(h);
            boolean condGrad = tape.requiresGrad(cond);
            if (hGrad) {
                local.track(h);
            }
            if (condGrad) {
                local.track(cond);
            }
            try (ForwardPass recompute = pass.sibling(local)) {
                Tensor o = block.apply(recompute, h, cond);
                local.backward(o, tape.grad(out));
            }
            handOver(local, tape, h, hGrad);
            handOver(local, tape, cond, condGrad);
        }
    }

    /** Moves t's gradient from the block's tape to the enclosing one (added to what t already has). */
    private static void handOver(Tape from, Tape to, Tensor t, boolean wanted) {
        if (!wanted) {
            return;
        }
        Tensor g = from.takeGrad(t);
        if (g != null) {
            to.adoptGrad(t, g);
        }
    }
}
