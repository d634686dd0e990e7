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
    private final AdamW adam;
    private final EmaSet emas;
    /** With a device-loss objective ({@link #enableDeviceLoss}): the step log and the (captured) step; else null. */
    private DeviceStepLog log;
    private CapturedStep captured;

    /**
     * The scalars of a run of at most {@code lastStep} steps; turns on the device step counters of {@code adam} and
     * {@code emas} (they start from the restored host counters, so call it after a resume).
     */
    DeviceStepScalars(Backend backend, AdamW adam, EmaSet emas, int lastStep) {
        this.backend = backend;
        this.adam = adam;
        this.emas = emas;
        adam.enableDeviceStep(backend, lastStep);
        emas.enableDeviceUpdate(lastStep);
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

    /**
     * The device-step update (the tail of a training step): the loss into its scalar, norm, clip and skip into the
     * control tensor, then AdamW and the EMAs reading it. Returns the norm for the metrics line (NaN for a non-finite
     * loss); that read is the one host synchronization left, until the captured step reads it at log steps only.
     */
    double update(float lossValue, facm.model.ModelWeights model, facm.autograd.Gradients grads, GradientNorm norm,
                  TrainingOps ops, float maxNorm) {
        setLoss(lossValue);
        norm.computeOnDevice(grads, loss, maxNorm, control);
        adam.updateOnDevice(model, grads, control);
        emas.updateOnDevice(model, ops, control);
        return !Float.isFinite(lossValue) ? Double.NaN : norm.lastNorm();
    }

    /**
     * The update of a device-loss step (the objective wrote the loss into {@link #loss()} and its row into
     * {@code log}): as {@link #update} with no host read at all, then the norm and skip flag into the log's row.
     */
    void updateAfterDeviceLoss(facm.model.ModelWeights model, facm.autograd.Gradients grads, GradientNorm norm,
                               TrainingOps ops, float maxNorm, DeviceStepLog log) {
        norm.computeOnDevice(grads, loss, maxNorm, control);
        adam.updateOnDevice(model, grads, control);
        emas.updateOnDevice(model, ops, control);
        ops.stepLogEnd(norm.sumOfSquares(), control, log.rows(), log.count());
    }

    /**
     * Turns on the device-loss step of {@code objective} (its {@code useDeviceInputs(true)} returned true): the step
     * log read at log steps, and the device side of the step (zeroed gradients, the objective's loss and gradients,
     * {@link #updateAfterDeviceLoss}) as a {@link CapturedStep}, captured as a CUDA graph when {@code capture} is set.
     */
    void enableDeviceLoss(Objective objective, facm.model.ModelWeights model, facm.autograd.Gradients grads,
                          GradientNorm norm, TrainingOps ops, TrainOptions options, boolean capture) {
        enableDeviceLoss(objective, model, grads, norm, ops, options.logEvery(), options.gradClip(), capture);
    }

    /** {@link #enableDeviceLoss} with the log capacity and the clip norm given directly ({@link DeviceTrainStep}). */
    void enableDeviceLoss(Objective objective, facm.model.ModelWeights model, facm.autograd.Gradients grads,
                          GradientNorm norm, TrainingOps ops, int logCapacity, float maxNorm, boolean capture) {
        log = new DeviceStepLog(backend, logCapacity, objective.deviceLogTerms());
        captured = new CapturedStep(backend, capture, () -> {
            grads.zero();
            objective.deviceLossAndGradients(model, grads, loss, log.rows(), log.count());
            updateAfterDeviceLoss(model, grads, norm, ops, maxNorm, log);
        });
    }

    boolean deviceLoss() {
        return log != null;
    }

    /** One device-loss step: the batch in (host copies), then the device side (a graph replay once captured). */
    void deviceLossStep(Objective objective, facm.model.ModelWeights model, facm.data.Batch batch, long step) {
        objective.loadDeviceInputs(model, batch, step);
        captured.run();
        log.rowQueued();
    }

    /** {@link DeviceStepLog#drain} of the device-loss steps since the last one (nothing without device loss). */
    void drainLog(MetricsLog metrics, int stepsCompleted, DeviceStepLog.SkipReport report) {
        if (log != null) {
            log.drain(metrics, stepsCompleted, report);
        }
    }

    /** Brings the device counters back to the host objects (before a checkpoint reads them, and at the end). */
    static void pullCounters(DeviceStepScalars scalars) {
        if (scalars != null) {
            scalars.adam.pullDeviceStep();
            scalars.emas.pullDeviceUpdates();
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
        if (captured != null) {
            captured.close();
        }
        if (log != null) {
            log.close();
        }
        loss.close();
        control.close();
    }
}
