package facm.training;

import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.Tensor;

/**
 * An exponential moving average of a model's trainable weights, kept as a complete {@link ModelWeights} (fixed tables
 * included) so it can be sampled from directly. The k-th {@link #update} (k = 1, 2, …) does
 * ema ← β_k·ema + (1 − β_k)·θ on every trainable tensor with {@link Backend#axpby}, β_k given by the subclass; β_k = 0
 * is an exact copy. The copy starts equal to θ.
 *
 * <p>{@link #update} is the per-tensor reference; {@link EmaSet} updates all tensors of a copy in one multi-tensor
 * launch (TrainingOps.emaUpdateForeach), on the host path and on the device-step path, with the same bits.
 */
public abstract class Ema implements AutoCloseable {
    private final String name;
    private final ModelWeights average;
    private long updates;

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

    /** Restores a checkpoint's update count (the tensors are restored through {@link #weights()}). */
    public final void restoreUpdates(long savedUpdates) {
        if (savedUpdates < 0) {
            throw new IllegalArgumentException("EMA " + name + ": saved update count " + savedUpdates + " is negative");
        }
        updates = savedUpdates;
    }

    @Override
    public final void close() {
        average.close();
    }
}
