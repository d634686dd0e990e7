package facm.training;

import facm.autograd.Gradients;
import facm.data.Batch;
import facm.model.ModelWeights;

/**
 * A training objective: the loss of one batch and its parameter gradients. Randomness (time, noise, label dropout)
 * must be a pure function of (seed, step, sample position) through facm.tensor.Philox, so a resumed run repeats the
 * uninterrupted one exactly.
 */
public interface Objective extends AutoCloseable {

    /** e.g. "fm" or "facm". */
    String name();

    /**
     * Computes the batch-mean loss and ACCUMULATES its gradient into {@code grads} (zeroed by the caller). Returns the
     * loss as a host float; it may be NaN or infinite, in which case the caller skips the update.
     */
    float lossAndGradients(ModelWeights weights, Gradients grads, Batch batch, long step);

    /** Named scalars of the last step worth logging (e.g. loss terms); may be empty. */
    default java.util.Map<String, Double> lastMetrics() {
        return java.util.Map.of();
    }

    @Override
    default void close() {
    }
}
