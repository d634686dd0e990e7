package facm.model;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The tensors of one LightningDiT on one backend, keyed by the official names of {@link ParameterTable}. Owns them:
 * {@link #close()} frees every tensor.
 */
public final class ModelWeights implements AutoCloseable {
    private final ModelConfig config;
    private final ParameterTable table;
    private final Backend backend;
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();

    public ModelWeights(ModelConfig config, Backend backend) {
        this.config = config;
        this.table = ParameterTable.of(config);
        this.backend = backend;
    }

    public ModelConfig config() {
        return config;
    }

    public ParameterTable table() {
        return table;
    }

    public Backend backend() {
        return backend;
    }

    /** The tensor for {@code key}; a clear error if the weights are incomplete. */
    public Tensor get(String key) {
        Tensor t = tensors.get(key);
        if (t == null) {
            throw new IllegalStateException("weight '" + key + "' was never set (" + config.name() + ")");
        }
        return t;
    }

    /** The tensor for {@code key} or null when the model has no such entry (e.g. no qk-norm). */
    public Tensor getOrNull(String key) {
        return tensors.get(key);
    }

    /** Sets {@code key} from host values after checking the shape against the table. */
    public void set(String key, float[] values) {
        ParameterTable.Entry e = table.get(key);
        if (values.length != e.numel()) {
            throw new IllegalArgumentException("weight '" + key + "': " + values.length + " values for shape "
                    + facm.tensor.Shapes.str(e.shape()));
        }
        Tensor old = tensors.put(key, backend.upload(key, values, e.shape()));
        if (old != null) {
            old.close();
        }
    }

    /** Fills every FIXED table (pos_embed, RoPE) with its computed values. */
    public void setFixedTables() {
        for (ParameterTable.Entry e : table.entries()) {
            if (e.kind() == ParameterTable.Kind.FIXED) {
                set(e.key(), FixedTables.valuesOf(config, e.key()));
            }
        }
    }

    /**
     * Deterministic weights for tests and fixtures, shared with tools/reference/philox.py (tools/reference/README.md):
     * trainable keys sorted by name, the k-th gets n_i = Philox normal (seed, (k &lt;&lt; 32) + i) scaled as
     * 1 + 0.1·n for norm weights, 0.02·n for biases and the class table, n/√fan_in otherwise. Fixed tables are computed.
     */
    public static ModelWeights philox(ModelConfig config, Backend backend, long seed) {
        ModelWeights w = new ModelWeights(config, backend);
        List<String> keys = w.table.entries().stream().filter(e -> e.kind() == ParameterTable.Kind.TRAINABLE)
                .map(ParameterTable.Entry::key).sorted().toList();
        for (int k = 0; k < keys.size(); k++) {
            ParameterTable.Entry e = w.table.get(keys.get(k));
            Tensor t = backend.empty(e.key(), DType.F32, e.shape());
            backend.randomNormal(t, seed, ((long) k) << 32);
            String key = e.key();
            if (key.endsWith("norm1.weight") || key.endsWith("norm2.weight") || key.endsWith("q_norm.weight")
                    || key.endsWith("k_norm.weight") || key.endsWith("norm_final.weight")) {
                backend.affine(t, 0.1f, 1f, t);
            } else if (key.endsWith(".bias") || key.equals("y_embedder.embedding_table.weight")) {
                backend.affine(t, 0.02f, 0f, t);
            } else {
                long fanIn = e.numel() / e.shape()[0];
                backend.affine(t, (float) (1.0 / Math.sqrt(fanIn)), 0f, t);
            }
            w.tensors.put(key, t);
        }
        w.setFixedTables();
        return w;
    }

    /** Every table entry present? Throws naming the first missing key. */
    public void requireComplete() {
        for (ParameterTable.Entry e : table.entries()) {
            if (!tensors.containsKey(e.key())) {
                throw new IllegalStateException("model weights incomplete: '" + e.key() + "' missing");
            }
        }
    }

    public Map<String, Tensor> asMap() {
        return java.util.Collections.unmodifiableMap(tensors);
    }

    @Override
    public void close() {
        for (Tensor t : tensors.values()) {
            t.close();
        }
        tensors.clear();
    }
}
