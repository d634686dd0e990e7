package facm.training;

import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

/**
 * An exponential moving average of a model's trainable weights, kept as a complete {@link ModelWeights} (fixed tables
 * included) so it can be sampled from directly. The k-th {@link #update} (k = 1, 2, …) does
 * ema ← β_k·ema + (1 − β_k)·θ on every trainable tensor with {@link Backend#axpby}, β_k given by the subclass; β_k = 0
 * is an exact copy. The copy starts equal to θ.
 *
 * <p>One axpby launch per tensor and EMA; a fused multi-tensor kernel (all tensors, all EMAs, one pass over θ) is the
 * obvious next step once the launch count matters (XL/1: ~340 tensors × 2 EMAs per step).
 */
public abstract class Ema implements AutoCloseable {
    private final String name;
    private final ModelWeights average;
    private long updates;
    /** Device-update state ({@link #enableDeviceUpdate}): the update counter and the decay table; else null. */
    private Tensor deviceUpdates;
    private Tensor decays;

    /** A copy of {@code model}'s current weights. */
    protected Ema(String name, ModelWeights model) {
        this.name = name;
        Backend be = model.backend();
        ModelWeights w = new ModelWeights(model.config(), be);
        try {
            w.setFixedTables();
            for (ParameterTable.Entry e : model.table().entries()) {
                if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                    w.set(e.key(), be.download(model.get(e.key())));
                }
            }
        } catch (RuntimeException ex) {
            w.close();
            throw ex;
        }
        this.average = w;
    }

    /** e.g. "power_0.2" or "classic_0.9999"; checkpoint keys are {@code ema.<name>.<parameter key>}. */
    public final String name() {
        return name;
    }

    /** The spec this EMA was made from, e.g. "power:0.2" (round-trips through {@link EmaSet#parse}). */
    public abstract String spec();

    /** β_k for the k-th update, k ≥ 1. */
    public abstract double decay(long k);

    /** Updates done so far. */
    public final long updates() {
        return updates;
    }

    /** The averaged weights (owned by this EMA). */
    public final ModelWeights weights() {
        return average;
    }

    /** One update towards {@code model}'s current weights. */
    public final void update(ModelWeights model) {
        long k = updates + 1;
        double beta = decay(k);
        Backend be = average.backend();
        for (ParameterTable.Entry e : average.table().entries()) {
            if (e.kind() != ParameterTable.Kind.TRAINABLE) {
                continue;
            }
            Tensor avg = average.get(e.key());
            Tensor theta = model.get(e.key());
            if (beta == 0) {
                be.copy(theta, avg);
            } else {
                be.axpby((float) beta, avg, (float) (1.0 - beta), theta, avg);
            }
        }
        updates = k;
    }

    /**
     * Prepares {@link #updateOnDevice} for updates up to {@code lastUpdate}: a device copy of the update count and a
     * table of β_k = {@link #decay}(k) for k = 1 … lastUpdate (index 0 unused). Calling it again re-uploads the count.
     */
    public final void enableDeviceUpdate(int lastUpdate) {
        closeDeviceUpdate();
        Backend be = average.backend();
        double[] table = new double[Math.addExact(lastUpdate, 1)];
        for (int k = 1; k <= lastUpdate; k++) {
            table[k] = decay(k);
        }
        decays = Fp64Table.upload(be, "ema." + name + ".decays", table);
        deviceUpdates = be.upload("ema." + name + ".updates", new int[] {Math.toIntExact(updates)}, 1);
    }

    /**
     * {@link #update} with the decay from the device counter, skipped on the device when {@code control}'s skip flag
     * is set (no host read). {@link #updates()} is stale until {@link #pullDeviceUpdates}.
     */
    public final void updateOnDevice(ModelWeights model, TrainingOps ops, Tensor control) {
        if (deviceUpdates == null) {
            throw new IllegalStateException("EMA " + name + ": updateOnDevice before enableDeviceUpdate");
        }
        for (ParameterTable.Entry e : average.table().entries()) {
            if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                ops.emaUpdate(average.get(e.key()), model.get(e.key()), decays, deviceUpdates, control);
            }
        }
        ops.advanceCounter(deviceUpdates, control);
    }

    /** Copies the device update count into {@link #updates()} (one synchronizing read). */
    public final void pullDeviceUpdates() {
        if (deviceUpdates != null) {
            updates = deviceUpdates.backend().downloadInts(deviceUpdates)[0];
        }
    }

    private void closeDeviceUpdate() {
        if (deviceUpdates != null) {
            deviceUpdates.close();
            decays.close();
            deviceUpdates = null;
            decays = null;
        }
    }

    /** Restores a checkpoint's update count (the tensors are restored through {@link #weights()}). */
    public final void restoreUpdates(long savedUpdates) {
        if (savedUpdates < 0) {
            throw new IllegalArgumentException("EMA " + name + ": saved update count " + savedUpdates + " is negative");
        }
        updates = savedUpdates;
    }

    @Override
    public final void close() {
        closeDeviceUpdate();
        average.close();
    }
}
