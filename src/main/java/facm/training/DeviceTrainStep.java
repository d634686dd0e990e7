package facm.training;

import facm.autograd.Gradients;
import facm.data.Batch;
import facm.model.ModelWeights;
import facm.tensor.Backend;

/**
 * The device-loss training step of {@code train --cuda-graph-step} outside the {@link Trainer}, for benchmarks and
 * embedding code: the objective's per-step inputs drawn on the device, its loss and gradients, the gradient norm, the
 * clip factor and skip flag, AdamW and the EMAs, all without a host read, and with {@code capture} the whole device
 * side replayed as one CUDA graph ({@link CapturedStep}) from the third step on. The step log is read (one
 * synchronization) every {@code logEvery} steps and by {@link #drain}.
 */
public final class DeviceTrainStep implements AutoCloseable {
    private final Objective objective;
    private final ModelWeights model;
    private final DeviceStepScalars scalars;
    private final int logEvery;
    private int sinceDrain;
    private int skipped;

    /**
     * @param lastStep the highest step number this object will run (sizes AdamW's and the EMAs' device tables)
     * @throws IllegalArgumentException when the objective has no device-input path (only facm, scm and meanflow do)
     */
    public DeviceTrainStep(Objective objective, ModelWeights model, Gradients grads, AdamW adam, EmaSet emas,
                           GradientNorm norm, float maxNorm, int lastStep, int logEvery, boolean capture) {
        if (!objective.useDeviceInputs(true)) {
            throw new IllegalArgumentException("device training step: the " + objective.name() + " objective makes its "
                    + "per-step inputs on the host; facm, scm and meanflow have the device path");
        }
        this.objective = objective;
        this.model = model;
        this.logEvery = logEvery;
        Backend backend = model.backend();
        this.scalars = new DeviceStepScalars(backend, adam, emas, lastStep);
        try {
            scalars.enableDeviceLoss(objective, model, grads, norm, backend.training(), logEvery, maxNorm, capture);
        } catch (RuntimeException e) {
            scalars.close();
            throw e;
        }
    }

    /** Step number {@code step} (1-based) on {@code batch}; asynchronous except every {@code logEvery}-th step. */
    public void step(Batch batch, long step) {
        scalars.deviceLossStep(objective, model, batch, step);
        if (++sinceDrain == logEvery) {
            drain();
        }
    }

    /** Reads the pending step log (counting skipped updates) and returns the last step's loss (a synchronization). */
    public float drain() {
        scalars.drainLog(null, sinceDrain, (n, loss, norm) -> skipped++);
        sinceDrain = 0;
        return model.backend().download(scalars.loss())[0];
    }

    /** Steps whose update was skipped (non-finite loss or norm), as of the last {@link #drain}. */
    public int skipped() {
        return skipped;
    }

    @Override
    public void close() {
        DeviceStepScalars.pullCounters(scalars);
        scalars.close();
    }
}
