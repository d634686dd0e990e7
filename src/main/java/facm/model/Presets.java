package facm.model;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The LightningDiT family (facm-spec.md §3.5, qk-norm on as FACM uses it, 32×16×16 latents, 1000 classes) and two
 * small presets of ours for tests and CPU runs on 32×32×1 images with 10 classes (Fashion-MNIST): tiny and small
 * (patch 2, 256 tokens) and tiny4 (tiny with patch 4: 64 tokens, about four times cheaper; the CPU's default job).
 */
public final class Presets {
    private static final Map<String, ModelConfig> ALL = new LinkedHashMap<>();

    static {
        latent("B/1", 12, 768, 12, 1);
        latent("B/2", 12, 768, 12, 2);
        latent("L/2", 24, 1024, 16, 2);
        latent("XL/1", 28, 1152, 16, 1);
        latent("XL/2", 28, 1152, 16, 2);
        latent("1p0B/1", 24, 1536, 24, 1);
        latent("1p0B/2", 24, 1536, 24, 2);
        latent("1p6B/1", 28, 1792, 28, 1);
        latent("1p6B/2", 28, 1792, 28, 2);
        put(new ModelConfig("tiny", 2, 64, 4, 2, 32, 1, 10, true, true, false));
        put(new ModelConfig("small", 6, 256, 4, 2, 32, 1, 10, true, true, false));
        put(new ModelConfig("tiny4", 2, 64, 4, 4, 32, 1, 10, true, true, false));
    }

    private Presets() {
    }

    private static void latent(String name, int depth, int hidden, int heads, int patch) {
        put(new ModelConfig(name, depth, hidden, heads, patch, 16, 32, 1000, true, true, false));
    }

    private static void put(ModelConfig c) {
        ALL.put(c.name(), c);
    }

    /** The preset of this name (case-insensitive; "XL-1" and "XL_1" also mean "XL/1"). */
    public static ModelConfig get(String name) {
        String want = name.trim().replace('-', '/').replace('_', '/');
        for (Map.Entry<String, ModelConfig> e : ALL.entrySet()) {
            if (e.getKey().equalsIgnoreCase(want)) {
                return e.getValue();
            }
        }
        throw new IllegalArgumentException("unknown model preset '" + name + "': choose one of " + ALL.keySet());
    }

    public static Map<String, ModelConfig> all() {
        return java.util.Collections.unmodifiableMap(ALL);
    }
}
