package facm.training;

import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.tensor.Backend;

/** Small models for the training tests: fast on two CPU cores, yet with every kind of tensor (qk-norm, RoPE). */
final class TrainingTestModels {
    private TrainingTestModels() {
    }

    /** 1 block, width 16, 2 heads of 8, patch 4 on 8×8×1 images (4 tokens), 3 classes. */
    static ModelConfig micro() {
        return new ModelConfig("micro", 1, 16, 2, 4, 8, 1, 3, true, true, false);
    }

    /**
     * 1 block, width 16, 1 head of 16 (the smallest head the CUDA attention kernels take), otherwise as
     * {@link #micro}.
     */
    static ModelConfig microOneHead() {
        return new ModelConfig("micro1h", 1, 16, 1, 4, 8, 1, 3, true, true, false);
    }

    static ModelWeights weights(Backend be, long seed) {
        return ModelWeights.philox(micro(), be, seed);
    }

    /** {@link #microOneHead} weights: for runs whose attention must also run on CUDA (head dimension >= 16). */
    static ModelWeights oneHeadWeights(Backend be, long seed) {
        return ModelWeights.philox(microOneHead(), be, seed);
    }
}
