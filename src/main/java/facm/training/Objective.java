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

    /**
     * As above for a rank's slice of the global batch ({@code batch} holds the slice's samples): per-sample
     * randomness is indexed by global position, and the loss is the mean over the slice (so the mean over ranks of the
     * losses and gradients is the global batch mean). Objectives that cannot shard accept only the whole batch.
     */
    default float lossAndGradients(ModelWeights weights, Gradients grads, Batch batch, long step, SampleSlice slice) {
        if (slice.isWhole() && slice.size() == batch.size()) {
            return lossAndGradients(weights, grads, batch, step);
        }
        throw new UnsupportedOperationException(name() + " objective cannot train on a slice of the batch ("
                + slice + "): data-parallel training needs per-sample randomness by global position");
    }

    /**
     * Makes the per-step inputs (times, noise, labels, coefficients) on the device from a step state held there
     * ({@code train --cuda-graph-step}), with the same values; returns false when the objective has no such path (it
     * then keeps its host inputs, which a captured step cannot replay).
     */
    default boolean useDeviceInputs(boolean on) {
        return !on;
    }

    /**
     * The host side of a device-loss step (after {@code useDeviceInputs(true)} returned true): the batch into the
     * objective's fixed device buffers (and its device step state, when that is not at {@code step}). Not capturable.
     */
    default void loadDeviceInputs(ModelWeights weights, Batch batch, long step) {
        throw new UnsupportedOperationException(name() + " objective has no device-loss form");
    }

    /**
     * The device side of that step, capturable as a CUDA graph: the loaded step's inputs, loss and gradients with
     * nothing read back; the total goes into {@code loss} (F32 [1]) and the loss with the objective's terms
     * ({@link #deviceLogTerms}) into row logCount[0] of {@code stepLog} through
     * {@link facm.tensor.TrainingOps#stepLoss}.
     */
    default void deviceLossAndGradients(ModelWeights weights, Gradients grads, facm.tensor.Tensor loss,
                                        facm.tensor.Tensor stepLog, facm.tensor.Tensor logCount) {
        throw new UnsupportedOperationException(name() + " objective has no device-loss form");
    }

    /** The names of the terms {@link #deviceLossAndGradients} logs (at most TrainingOps.STEP_LOG_TERMS). */
    default java.util.List<String> deviceLogTerms() {
        return java.util.List.of();
    }

    /**
     * Activation checkpointing per block for the passes whose backward the objective runs ({@code train
     * --checkpoint-blocks}): each block keeps only its input and recomputes its forward in the backward. Gradients
     * are unchanged (see {@link facm.model.LightningDiT#checkpointBlocks}); only peak memory and time move. Objectives
     * without a model pass ignore it.
     */
    default void checkpointBlocks(boolean on) {
    }

    /** Named scalars of the last step worth logging (e.g. loss terms); may be empty. */
    default java.util.Map<String, Double> lastMetrics() {
        return java.util.Map.of();
    }

    @Override
    default void close() {
    }
}
