package facm.objectives;

import facm.model.LightningDiT;
import facm.model.ModelWeights;
import facm.tensor.GemmPrecision;

/**
 * The model an objective trains: one {@link LightningDiT} over the weights of the current step (a new one only when the
 * weights object changes), in the objective's precision, with activation checkpointing as {@code train
 * --checkpoint-blocks} asks.
 */
final class TrainedModel {
    private final GemmPrecision precision;
    private LightningDiT model;
    private boolean checkpointBlocks;

    TrainedModel(GemmPrecision precision) {
        this.precision = precision;
    }

    LightningDiT of(ModelWeights weights) {
        if (model == null || model.weights() != weights) {
            model = new LightningDiT(weights).precision(precision).checkpointBlocks(checkpointBlocks);
        }
        return model;
    }

    void checkpointBlocks(boolean on) {
        checkpointBlocks = on;
        if (model != null) {
            model.checkpointBlocks(on);
        }
    }
}
