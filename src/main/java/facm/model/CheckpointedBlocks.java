package facm.model;

import facm.autograd.CheckpointedBlock;
import facm.autograd.ForwardPass;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * {@link LightningDiT}'s blocks under activation checkpointing ({@link LightningDiT#checkpointBlocks}): each block
 * run by {@link CheckpointedBlock}, which keeps only the block's input and recomputes its forward in the backward.
 */
final class CheckpointedBlocks {
    private CheckpointedBlocks() {
    }

    /** {@link LightningDiT#block} i of {@code model} under {@link CheckpointedBlock} (V is Tensor on a ForwardPass). */
    @SuppressWarnings("unchecked")
    static <V> V run(LightningDiT model, ForwardPass pass, int i, V h, V sc) {
        String prefix = "blocks." + i + ".";
        List<Tensor> params = new ArrayList<>();
        model.weights().asMap().forEach((k, v) -> {
            if (k.startsWith(prefix)) {
                params.add(v);
            }
        });
        return (V) CheckpointedBlock.run(pass, prefix + "block", (Tensor) h, (Tensor) sc, params,
                (p, hIn, cond) -> model.block(p, i, hIn, cond));
    }
}
