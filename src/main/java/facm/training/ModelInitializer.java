package facm.training;

import facm.model.ModelCheckpoint;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * The from-scratch initialization of LightningDiT (facm-spec.md §3.6, §3.7): Xavier-uniform for every linear layer
 * (the patch embedding on its flattened [D, C·p²] view) with zero biases; N(0, 0.02²) for the class table and the
 * time-MLP weights; zero for every adaLN output linear and the final output linear (blocks start as identities and
 * the model outputs 0); RMSNorm weights 1; the auxiliary r-embedder's second linear zero (so it starts as a no-op,
 * §3.7; {@link #initializeFrom} adds it to a checkpoint that lacks it). Random numbers are Philox:
 * the k-th trainable key in sorted order draws counters (k &lt;&lt; 32) + i from {@code seed}, so the same seed gives the
 * same weights on every backend.
 */
public final class ModelInitializer {
    static final float SMALL_STD = 0.02f;
    /** The auxiliary time embedder's tensors (§3.7), absent from FM and expanded-interval checkpoints. */
    private static final String AUX_PREFIX = "r_embedder.";

    private ModelInitializer() {
    }

    public static ModelWeights initialize(ModelConfig config, Backend backend, long seed) {
        ModelWeights w = new ModelWeights(config, backend);
        try {
            w.setFixedTables();
            List<ParameterTable.Entry> keys = trainableSorted(w);
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

    /**
     * The model weights of {@code checkpoint} as a {@code target} model (its tensor names, shapes and fixed tables are
     * checked as {@link ModelCheckpoint#load} checks them). A checkpoint without the auxiliary time embedder loads
     * into an auxiliary-time {@code target} (the FM teacher of a MeanFlow or FACM-aux student, facm-spec.md §3.7): the
     * {@code r_embedder.*} tensors then get exactly what {@link #initialize} would give them with {@code seed}, whose
     * second linear is zero, so the new branch adds 0 to c and the student's output equals the teacher's for every r.
     * Any other missing or unexpected key is a one-line {@link facm.checkpoint.CheckpointException}.
     */
    public static ModelWeights initializeFrom(Path checkpoint, ModelConfig target, Backend be, long seed)
            throws IOException {
        return initializeFrom(checkpoint, "", target, be, seed);
    }

    /**
     * As {@link #initializeFrom(Path, ModelConfig, Backend, long)} from the tensors named {@code keyPrefix + key},
     * e.g. "ema.power_0.2." for an EMA copy in a training checkpoint (facm-spec.md §5.4 starts from the teacher's EMA).
     */
    public static ModelWeights initializeFrom(Path checkpoint, String keyPrefix, ModelConfig target, Backend be,
                                              long seed) throws IOException {
        boolean fileHasAux = ModelCheckpoint.modelKeys(checkpoint, keyPrefix).keySet().stream()
                .anyMatch(k -> k.startsWith(AUX_PREFIX));
        if (!target.auxTime() || fileHasAux) {
            return ModelCheckpoint.load(checkpoint, target, be, keyPrefix);
        }
        ModelWeights w = ModelCheckpoint.loadWithout(checkpoint, target, be, keyPrefix, auxKeys(target));
        try {
            List<ParameterTable.Entry> keys = trainableSorted(w);
            for (int k = 0; k < keys.size(); k++) {
                ParameterTable.Entry e = keys.get(k);
                if (e.key().startsWith(AUX_PREFIX)) {
                    w.set(e.key(), values(be, e, seed, ((long) k) << 32));
                }
            }
            w.requireComplete();
        } catch (RuntimeException ex) {
            w.close();
            throw ex;
        }
        return w;
    }

    private static Set<String> auxKeys(ModelConfig c) {
        Set<String> keys = new TreeSet<>();
        for (ParameterTable.Entry e : ParameterTable.of(c).entries()) {
            if (e.key().startsWith(AUX_PREFIX)) {
                keys.add(e.key());
            }
        }
        return keys;
    }

    /** Trainable entries sorted by key: the k-th draws its random numbers from Philox counters (k &lt;&lt; 32) + i. */
    private static List<ParameterTable.Entry> trainableSorted(ModelWeights w) {
        return w.table().entries().stream()
                .filter(e -> e.kind() == ParameterTable.Kind.TRAINABLE)
                .sorted(java.util.Comparator.comparing(ParameterTable.Entry::key)).toList();
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
