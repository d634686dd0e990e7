package facm.objectives;

import facm.autograd.Dual;
import facm.autograd.Gradients;
import facm.autograd.Tape;
import facm.model.LightningDiT;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TensorScope;

/**
 * The two student passes of a {@link ConsistencyObjective} step, each on its own tape so its activations are freed
 * before the next starts: the FM anchor (§5.2c) and the CM term through one forward-mode pass (§5.2d, §5.7). Each
 * returns its per-sample loss [B] (the caller's to close) and accumulates its gradients; the caller takes the batch
 * means (on the host, or on the device for the captured step).
 */
final class ConsistencyPasses {
    private ConsistencyPasses() {
    }

    /** §5.2c: the FM anchor at time 2 − t (auxiliary-time model: (t, r = t)); returns its per-sample loss [B]. */
    static Tensor anchorLoss(LightningDiT m, Gradients grads, Tensor xt, Tensor tT, Tensor y, Tensor v) {
        Backend be = xt.backend();
        int b = tT.dim(0);
        boolean aux = m.config().auxTime();
        try (TensorScope s = new TensorScope();
             Tape tape = grads == null ? null : Tape.forParameters(m.weights(), grads)) {
            Tensor tau = aux ? tT : s.track(be.empty("2-t", DType.F32, b));
            if (!aux) {
                be.affine(tT, -1f, 2f, tau);
            }
            Tensor pred = s.track(m.forward(xt, tau, y, aux ? tT : null, tape));
            Tensor perSample = s.track(be.empty("loss_fm", DType.F32, b));
            Tensor grad = tape == null ? null : s.track(be.empty("dL_fm/dF", DType.F32, pred.shape()));
            be.training().flowMatchingLoss(pred, v, perSample, grad, 1f / b);
            if (tape != null) {
                tape.backward(pred, grad);
            }
            return s.keep(perSample);
        }
    }

    /** §5.2d / §5.7: the CM term through one forward-mode pass; returns its per-sample loss [B]. */
    static Tensor consistencyLoss(ConsistencyObjective.Options options, LightningDiT m, Gradients grads,
                                  ConsistencyObjective.StepTensors in, Tensor v) {
        Tensor xt = in.xt();
        Tensor tT = in.t();
        Tensor y = in.y();
        Backend be = xt.backend();
        int b = tT.dim(0);
        try (TensorScope s = new TensorScope();
             Tape tape = grads == null ? null : Tape.forParameters(m.weights(), grads)) {
            Tensor ones = s.track(be.empty("dt", DType.F32, b));
            be.fill(ones, 1f);
            Tensor rT = switch (options.kind()) {
                case MEANFLOW -> in.r();
                case FACM -> m.config().auxTime() ? ones : null; // §3.7: CM on (t, r = 1)
                case SCM -> null;
            };
            Dual out = m.jvp(xt, v, tT, ones, y, rT, tape);
            s.track(out.primal());
            s.track(out.tangent());
            Tensor coefs = in.coefs();
            Tensor perSample = s.track(be.empty("loss_cm", DType.F32, b));
            Tensor grad = tape == null ? null : s.track(be.empty("dL_cm/dF", DType.F32, out.primal().shape()));
            ConsistencyObjective.Kind k = options.kind();
            float clip = k == ConsistencyObjective.Kind.FACM ? options.clip() : 0f;
            float normEps = k == ConsistencyObjective.Kind.SCM ? 0.1f : 0f;
            float power = switch (k) {
                case FACM -> 0.5f;
                case MEANFLOW -> 1f;
                case SCM -> 0f;
            };
            be.training().consistencyLoss(out.primal(), out.tangent(), v, coefs, clip, normEps, power,
                    options.normEps(), perSample, grad, 1f / b);
            if (tape != null) {
                tape.backward(out.primal(), grad);
            }
            return s.keep(perSample);
        }
    }
}
