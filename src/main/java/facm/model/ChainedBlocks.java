package facm.model;

import facm.autograd.LayerOps;
import facm.tensor.Tensor;

/**
 * The blocks and the final layer of a tape-less {@link LightningDiT} pass, with each block's last gated residual
 * fused with the norm that follows it (the next block's norm1, or the final layer's norm): the next modulation is
 * computed first, so h is read once per residual-plus-norm. Same values as the {@link LightningDiT#block} loop; passes
 * with a tape keep that loop (their backward order stays as it was).
 */
final class ChainedBlocks {
    private ChainedBlocks() {
    }

    /** Runs {@code model}'s blocks and final layer chained on {@code pass}; consumes h. */
    static <V> V run(LightningDiT model, LayerOps<V> pass, V h, V sc, int[] outShape) {
        ModelWeights w = model.weights();
        int depth = model.config().depth();
        float eps = ModelConfig.NORM_EPS;
        V mod = model.blockModulation(pass, 0, sc);
        V a = pass.rmsNormModulate("blocks.0.norm1", h, w.get("blocks.0.norm1.weight"), eps, mod, 0, 1);
        for (int i = 0; i < depth; i++) {
            LightningDiT.Branches<V> br = model.branches(pass, i, h, a, mod);
            boolean last = i + 1 == depth;
            V next = last ? model.finalModulation(pass, sc) : model.blockModulation(pass, i + 1, sc);
            String norm = last ? "final_layer.norm" : "blocks." + (i + 1) + ".norm1";
            Tensor weight = w.get(last ? "final_layer.norm_final.weight" : norm + ".weight");
            LayerOps.ResidualNorm<V> rn = pass.gatedResidualRmsNormModulate(norm, br.h(), br.mlp(), mod, 5, weight,
                    eps, next, 0, 1);
            pass.release(br.mlp(), mod);
            h = rn.h();
            a = rn.normed();
            mod = next;
        }
        V out = model.finalOutput(pass, a, outShape);
        pass.release(mod, h);
        return out;
    }
}
