package facm.training;

import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.List;

/**
 * The from-scratch initialization of LightningDiT (facm-spec.md §3.6, §3.7): Xavier-uniform for every linear layer
 * (the patch embedding on its flattened [D, C·p²] view) with zero biases; N(0, 0.02²) for the class table and the
 * time-MLP weights; zero for every adaLN output linear and the final output linear (blocks start as identities and
 * the model outputs 0); RMSNorm weights 1; the auxiliary r-embedder's second linear zero. Random numbers are Philox:
 * the k-th trainable key in sorted order draws counters (k &lt;&lt; 32) + i from {@code seed}, so the same seed gives the
 * same weights on every backend.
 */
public final class ModelInitializer {
    static final float SMALL_STD = 0.02f;

    private ModelInitializer() {
    }

    public static ModelWeights initialize(ModelConfig config, Backend backend, long seed) {
        ModelWeights w = new ModelWeights(config, backend);
        try {
            w.setFixedTables();
            List<ParameterTable.Entry> keys = w.table().entries().stream()
                    .filter(e -> e.kind() == ParameterTable.Kind.TRAINABLE)
                    .sorted(java.util.Comparator.comparing(ParameterTable.Entry::key)).toList();
            for (int k = 0; k < keys.size(); k++) {
                ParameterTable.Entry e = keys.get(k);
                w.set(e.key(), values(backend, e, seed, ((long) k) << 32));
            }
        } catch (RuntimeException ex) {
            w.close();
            throw ex;
        }
        return w;
    }

    /** What §3.6 prescribes for one key. */
    enum Rule { ZERO, ONE, SMALL_NORMAL, XAVIER }

    static Rule rule(String key) {
        if (key.endsWith("norm1.weight") || key.endsWith("norm2.weight") || key.endsWith("q_norm.weight")
                || key.endsWith("k_norm.weight") || key.endsWith("norm_final.weight")) {
            return Rule.ONE;
        }
        if (key.contains("adaLN_modulation") || key.startsWith("final_layer.linear.")
                || key.startsWith("r_embedder.mlp.2.") || key.endsWith(".bias")) {
            return Rule.ZERO;
        }
        if (key.equals("y_embedder.embedding_table.weight") || key.startsWith("t_embedder.mlp.")
                || key.startsWith("r_embedder.mlp.")) {
            return Rule.SMALL_NORMAL;
        }
        return Rule.XAVIER;
    }

    private static float[] values(Backend be, ParameterTable.Entry e, long seed, long offset) {
        int n = Math.toIntExact(e.numel());
        Rule r = rule(e.key());
        if (r == Rule.ZERO || r == Rule.ONE) {
            float[] v = new float[n];
            java.util.Arrays.fill(v, r == Rule.ONE ? 1f : 0f);
            return v;
        }
        try (Tensor t = be.empty("init", DType.F32, e.shape())) {
            if (r == Rule.SMALL_NORMAL) {
                be.randomNormal(t, seed, offset);
                be.affine(t, SMALL_STD, 0f, t);
            } else {
                // Xavier uniform: U(−a, a), a = √(6 / (fan_in + fan_out)); weights are [out, in...].
                long fanOut = e.shape()[0];
                long fanIn = e.numel() / fanOut;
                float a = (float) Math.sqrt(6.0 / (fanIn + fanOut));
                be.randomUniform(t, seed, offset);
                be.affine(t, 2 * a, -a, t);
            }
            return be.download(t);
        }
    }
}
