package facm.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Every named tensor of a LightningDiT with its shape, in the official PyTorch state-dict names (facm-spec.md §3.3).
 * Checkpoint I/O, initialization and the optimizer are loops over this table.
 */
public final class ParameterTable {

    /** TRAINABLE tensors get gradients; FIXED ones (pos_embed, RoPE tables) are stored but computed, never trained. */
    public enum Kind { TRAINABLE, FIXED }

    public record Entry(String key, int[] shape, Kind kind) {
        public long numel() {
            long n = 1;
            for (int d : shape) {
                n *= d;
            }
            return n;
        }
    }

    private final List<Entry> entries;
    private final Map<String, Entry> byKey;

    private ParameterTable(List<Entry> entries) {
        this.entries = Collections.unmodifiableList(entries);
        Map<String, Entry> m = new LinkedHashMap<>();
        for (Entry e : entries) {
            m.put(e.key(), e);
        }
        this.byKey = Collections.unmodifiableMap(m);
    }

    public static ParameterTable of(ModelConfig c) {
        List<Entry> l = new ArrayList<>();
        int d = c.hidden();
        int dh = c.headDim();
        int f = c.mlpHidden();
        l.add(fixed("pos_embed", 1, c.tokens(), d));
        l.add(param("x_embedder.proj.weight", d, c.inChannels(), c.patch(), c.patch()));
        l.add(param("x_embedder.proj.bias", d));
        timeMlp(l, "t_embedder", d);
        l.add(param("y_embedder.embedding_table.weight", c.numClasses() + 1, d));
        if (c.auxTime()) {
            timeMlp(l, "r_embedder", d);
        }
        if (c.rope()) {
            l.add(fixed("feat_rope.freqs_cos", c.tokens(), dh));
            l.add(fixed("feat_rope.freqs_sin", c.tokens(), dh));
        }
        for (int i = 0; i < c.depth(); i++) {
            String b = "blocks." + i + ".";
            l.add(param(b + "norm1.weight", d));
            l.add(param(b + "attn.qkv.weight", 3 * d, d));
            l.add(param(b + "attn.qkv.bias", 3 * d));
            if (c.qkNorm()) {
                l.add(param(b + "attn.q_norm.weight", dh));
                l.add(param(b + "attn.k_norm.weight", dh));
            }
            l.add(param(b + "attn.proj.weight", d, d));
            l.add(param(b + "attn.proj.bias", d));
            l.add(param(b + "norm2.weight", d));
            l.add(param(b + "mlp.w12.weight", 2 * f, d));
            l.add(param(b + "mlp.w12.bias", 2 * f));
            l.add(param(b + "mlp.w3.weight", d, f));
            l.add(param(b + "mlp.w3.bias", d));
            l.add(param(b + "adaLN_modulation.1.weight", 6 * d, d));
            l.add(param(b + "adaLN_modulation.1.bias", 6 * d));
        }
        l.add(param("final_layer.norm_final.weight", d));
        l.add(param("final_layer.linear.weight", c.patchFeatures(), d));
        l.add(param("final_layer.linear.bias", c.patchFeatures()));
        l.add(param("final_layer.adaLN_modulation.1.weight", 2 * d, d));
        l.add(param("final_layer.adaLN_modulation.1.bias", 2 * d));
        return new ParameterTable(l);
    }

    private static void timeMlp(List<Entry> l, String prefix, int d) {
        l.add(param(prefix + ".mlp.0.weight", d, ModelConfig.TIME_FEATURES));
        l.add(param(prefix + ".mlp.0.bias", d));
        l.add(param(prefix + ".mlp.2.weight", d, d));
        l.add(param(prefix + ".mlp.2.bias", d));
    }

    private static Entry param(String key, int... shape) {
        return new Entry(key, shape, Kind.TRAINABLE);
    }

    private static Entry fixed(String key, int... shape) {
        return new Entry(key, shape, Kind.FIXED);
    }

    public List<Entry> entries() {
        return entries;
    }

    public Entry get(String key) {
        Entry e = byKey.get(key);
        if (e == null) {
            throw new IllegalArgumentException("no parameter '" + key + "' in this model");
        }
        return e;
    }

    public boolean contains(String key) {
        return byKey.containsKey(key);
    }

    /** Name → shape, for checkpoint validation. */
    public Map<String, int[]> shapes() {
        Map<String, int[]> m = new LinkedHashMap<>();
        for (Entry e : entries) {
            m.put(e.key(), e.shape().clone());
        }
        return m;
    }

    /** Parameters as the literature counts them: every trainable tensor plus the stored pos_embed (§3.3). */
    public long parameterCount() {
        long n = 0;
        for (Entry e : entries) {
            if (e.kind() == Kind.TRAINABLE || e.key().equals("pos_embed")) {
                n += e.numel();
            }
        }
        return n;
    }

    public long trainableCount() {
        long n = 0;
        for (Entry e : entries) {
            if (e.kind() == Kind.TRAINABLE) {
                n += e.numel();
            }
        }
        return n;
    }
}
