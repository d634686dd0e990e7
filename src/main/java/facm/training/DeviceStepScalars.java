package facm.training;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

/**
 * The device scalars of one training step on the device-step path ({@code train --cuda-graph-step}): the step's loss
 * (F32 [1]) and the control tensor (F32 [{@link TrainingOps#CONTROL_SIZE}]: clip factor and skip flag) that
 * {@link GradientNorm#computeOnDevice} writes and the AdamW and EMA updates read. Fixed buffers, allocated once, so a
 * captured step always sees the same addresses.
 */
final class DeviceStepScalars implements AutoCloseable {
    private final Backend backend;
    private final Tensor loss;
    private final Tensor control;

    DeviceStepScalars(Backend backend) {
        this.backend = backend;
        Tensor l = backend.zeros(DType.F32, 1);
        try {
            this.control = backend.zeros(DType.F32, TrainingOps.CONTROL_SIZE);
        } catch (RuntimeException e) {
            l.close();
            throw e;
        }
        this.loss = l;
    }

    /**
     * Puts a host loss into the device scalar (the objectives still return the loss as a host float; a captured step
     * will have them write it there instead).
     */
    void setLoss(float value) {
        Tensor host = backend.upload("step loss", new float[] {value}, 1);
        try {
            backend.copy(host, loss);
        } finally {
            host.close();
        }
    }

    Tensor loss() {
        return loss;
    }

    Tensor control() {
        return control;
    }

    @Override
    public void close() {
        loss.close();
        control.close();
    }
}
