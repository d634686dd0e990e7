package facm.tensor;

import static facm.tensor.TrainingOps.CONTROL_CLIP;
import static facm.tensor.TrainingOps.CONTROL_SKIP;

/**
 * The bodies of {@link TrainingOps}' device-resident step-control defaults (stepControl, the device-step adamw and
 * emaUpdate, advanceCounter), the reference the CUDA kernels are bit-identical to: each reads the control tensor,
 * counter and fp64 table back, then calls the host form of the op (or writes the result back) with the very
 * expressions of the host path.
 */
final class HostStepControl {
    private HostStepControl() {
    }

    /** See {@link TrainingOps#stepControl}. */
    static void stepControl(Tensor sumSquares, Tensor loss, float maxNorm, Tensor control) {
        Backend be = control.backend();
        double norm = Math.sqrt(be.download(sumSquares)[0]);
        float lossValue = be.download(loss)[0];
        boolean skip = !Float.isFinite(lossValue) || !Double.isFinite(norm);
        float clip = maxNorm > 0 ? (float) Math.min(1.0, maxNorm / (norm + 1e-6)) : 1f;
        Tensor values = be.upload("control", new float[] {clip, skip ? 1f : 0f}, control.shape());
        try {
            be.copy(values, control);
        } finally {
            values.close();
        }
    }

    /** See the device-step {@link TrainingOps#adamw}: the host form through {@code ops}, unless the step is skipped. */
    static void adamw(TrainingOps ops, Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1,
                      float beta2, float eps, float weightDecay, Tensor biasCorrections, Tensor counter,
                      Tensor control) {
        Backend be = control.backend();
        float[] c = be.download(control);
        if (c[CONTROL_SKIP] != 0f) {
            return;
        }
        int step = Math.addExact(be.downloadInts(counter)[0], 1);
        int[] words = be.downloadInts(biasCorrections);
        if (2L * (2L * step + 1) + 1 >= words.length) {
            throw new IllegalArgumentException("adamw: step " + step + " is past the bias-correction table "
                    + biasCorrections.describe());
        }
        double bc1 = TrainingOps.fp64At(words, 2 * step), bc2 = TrainingOps.fp64At(words, 2 * step + 1);
        if (bc1 != 1.0 - Math.pow(beta1, step) || bc2 != 1.0 - Math.pow(beta2, step)) {
            throw new IllegalArgumentException("adamw: the bias-correction table " + biasCorrections.describe()
                    + " was not made for beta1 " + beta1 + ", beta2 " + beta2 + " (step " + step + ")");
        }
        ops.adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, c[CONTROL_CLIP]);
    }

    /** See the device-step {@link TrainingOps#emaUpdate}. */
    static void emaUpdate(Tensor average, Tensor theta, Tensor decays, Tensor counter, Tensor control) {
        Backend be = control.backend();
        if (be.download(control)[CONTROL_SKIP] != 0f) {
            return;
        }
        int k = Math.addExact(be.downloadInts(counter)[0], 1);
        int[] words = be.downloadInts(decays);
        if (2L * k + 1 >= words.length) {
            throw new IllegalArgumentException("emaUpdate: update " + k + " is past the decay table "
                    + decays.describe());
        }
        double beta = TrainingOps.fp64At(words, k);
        if (beta == 0) {
            be.copy(theta, average);
        } else {
            be.axpby((float) beta, average, (float) (1.0 - beta), theta, average);
        }
    }

    /** See {@link TrainingOps#advanceCounter}. */
    static void advanceCounter(Tensor counter, Tensor control) {
        Backend be = control.backend();
        if (be.download(control)[CONTROL_SKIP] != 0f) {
            return;
        }
        int[] c = be.downloadInts(counter);
        c[0] = Math.addExact(c[0], 1);
        Tensor next = be.upload("counter", c, counter.shape());
        try {
            be.copy(next, counter);
        } finally {
            next.close();
        }
    }
}
