package facm.training;

import facm.tensor.Tensor;

import java.util.Map;

/**
 * What a checkpoint holds of the optimizer: AdamW's moments by parameter key (whole tensors, whatever the world
 * size) and its update counter. {@link AdamW} is one; a sharded optimizer gathers its shards into one at checkpoint
 * time ({@link ShardedAdamW#gathered}) and takes whole moments back on restore.
 */
public interface OptimizerMoments {
    int step();

    Map<String, Tensor> firstMoments();

    Map<String, Tensor> secondMoments();

    void restoreMoments(String key, float[] firstMoment, float[] secondMoment);

    void restoreStep(int savedStep);
}
