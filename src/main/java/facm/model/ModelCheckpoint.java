package facm.model;

import facm.checkpoint.CheckpointException;
import facm.checkpoint.SafetensorsWriter;
import facm.checkpoint.StateDict;
import facm.checkpoint.StateDictCheck;
import facm.tensor.Backend;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Loads and saves LightningDiT weights. Reads safetensors or PyTorch {@code .pt} files (loader rule of facm-spec.md
 * §8) with the official key names; the config comes from the file's {@code config} metadata (our checkpoints) or from
 * a preset the caller names (official weights). The fixed tables (pos_embed, RoPE) may be absent; when present they
 * are checked against the recomputed ones.
 */
public final class ModelCheckpoint {
    /** Largest difference tolerated between a stored fixed table and ours (the official code builds RoPE in fp32). */
    private static final float FIXED_TABLE_TOLERANCE = 1e-4f;

    private ModelCheckpoint() {
    }

    /** The model config stored in a checkpoint, or {@code fallback} (may be null) when the file has none. */
    public static ModelConfig configOf(Path file, ModelConfig fallback) throws IOException {
        try (StateDict sd = StateDict.open(file, StateDict.Which.AUTO)) {
            String json = sd.metadata().get("config");
            if (json != null) {
                return ModelConfig.fromJson(json);
            }
        }
        if (fallback == null) {
            throw new CheckpointException(file + " has no model config in its metadata: name the architecture with "
                    + "--model (one of " + Presets.all().keySet() + ")");
        }
        return fallback;
    }

    public static ModelWeights load(Path file, ModelConfig config, Backend backend) throws IOException {
        return load(file, config, backend, "");
    }

    /**
     * Loads the tensors named {@code keyPrefix + key}: "" for the model itself, or e.g. "ema.power_0.2." for an EMA
     * copy in a training checkpoint (facm.training.TrainState). With no prefix, a training checkpoint's extra keys
     * ({@code ema.*}, {@code adam.*}) are ignored.
     */
    public static ModelWeights load(Path file, ModelConfig config, Backend backend, String keyPrefix)
            throws IOException {
        return loadWithout(file, config, backend, keyPrefix, Set.of());
    }

    /**
     * The model's tensor names in {@code file} (the {@code keyPrefix} removed; with no prefix, without a training
     * checkpoint's {@code ema.*} and {@code adam.*} keys) and their shapes, in the file's order.
     */
    public static Map<String, int[]> modelKeys(Path file, String keyPrefix) throws IOException {
        try (StateDict sd = StateDict.open(file, StateDict.Which.AUTO)) {
            return modelKeys(sd, keyPrefix);
        }
    }

    private static Map<String, int[]> modelKeys(StateDict sd, String keyPrefix) {
        Map<String, int[]> found = new LinkedHashMap<>();
        sd.shapes().forEach((k, shape) -> {
            if (keyPrefix.isEmpty() ? !k.startsWith("ema.") && !k.startsWith("adam.") : k.startsWith(keyPrefix)) {
                found.put(k.substring(keyPrefix.length()), shape);
            }
        });
        return found;
    }

    /**
     * As {@link #load(Path, ModelConfig, Backend, String)} for a file that lacks some of {@code config}'s trainable
     * tensors on purpose (a student that grows a branch its teacher does not have, facm-spec.md §3.7): the keys in
     * {@code absent} must NOT be in the file and are left unset, for the caller to fill before use. Every other key is
     * checked as {@code load} checks it (one-line error for a missing, unexpected or misshapen tensor).
     */
    public static ModelWeights loadWithout(Path file, ModelConfig config, Backend backend, String keyPrefix,
                                           Set<String> absent) throws IOException {
        ParameterTable table = ParameterTable.of(config);
        for (String k : absent) {
            if (table.get(k).kind() != ParameterTable.Kind.TRAINABLE) {
                throw new IllegalArgumentException("loadWithout: '" + k + "' is not a trainable tensor of "
                        + config.name());
            }
        }
        try (StateDict sd = StateDict.open(file, StateDict.Which.AUTO)) {
            Map<String, int[]> expected = new LinkedHashMap<>();
            Map<String, int[]> found = modelKeys(sd, keyPrefix);
            if (found.isEmpty() && !keyPrefix.isEmpty()) {
                throw new CheckpointException(file + " has no tensors named '" + keyPrefix + "*'");
            }
            for (String k : absent) {
                if (found.containsKey(k)) {
                    throw new CheckpointException(file + " has '" + keyPrefix + k + "', which the caller expected "
                            + "to be absent (it initializes that tensor itself)");
                }
            }
            for (ParameterTable.Entry e : table.entries()) {
                if (e.kind() == ParameterTable.Kind.TRAINABLE ? !absent.contains(e.key()) : found.containsKey(e.key())) {
                    expected.put(e.key(), e.shape());
                }
            }
            StateDictCheck.verify(expected, found, file.toString());
            ModelWeights w = new ModelWeights(config, backend);
            try {
                w.setFixedTables();
                for (ParameterTable.Entry e : table.entries()) {
                    if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                        if (!absent.contains(e.key())) {
                            w.set(e.key(), sd.tensor(keyPrefix + e.key()).toFloats());
                        }
                    } else if (found.containsKey(e.key())) {
                        var stored = sd.tensor(keyPrefix + e.key());
                        checkFixed(file, config, e.key(), stored.toFloats(), tolerance(stored.dtype()));
                    }
                }
            } catch (RuntimeException ex) {
                w.close();
                throw ex;
            }
            return w;
        }
    }

    /** Tables stored in a 16-bit type carry its rounding (values are in [-1, 1]). */
    private static float tolerance(facm.checkpoint.CheckpointDType stored) {
        return switch (stored) {
            case BF16 -> 1f / 128;
            case F16 -> 1f / 1024;
            default -> FIXED_TABLE_TOLERANCE;
        };
    }

    private static void checkFixed(Path file, ModelConfig c, String key, float[] stored, float tolerance) {
        float[] ours = FixedTables.valuesOf(c, key);
        for (int i = 0; i < ours.length; i++) {
            if (!(Math.abs(ours[i] - stored[i]) <= tolerance)) {
                throw new CheckpointException(file + ": fixed table '" + key + "' differs from the one this config "
                        + "implies at element " + i + " (" + stored[i] + " vs " + ours[i] + "): wrong architecture "
                        + "settings (input size, patch, hidden, heads)?");
            }
        }
    }

    /** Writes every tensor (fixed tables included, as the official state dicts do) as fp32, atomically. */
    public static void save(ModelWeights w, Path file, Map<String, String> extraMetadata) throws IOException {
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        for (ParameterTable.Entry e : w.table().entries()) {
            entries.add(SafetensorsWriter.Entry.f32(e.key(), e.shape(), w.backend().download(w.get(e.key()))));
        }
        Map<String, String> meta = new LinkedHashMap<>(extraMetadata);
        meta.put("config", w.config().toJson());
        meta.put("format", "facm-engine/lightningdit");
        SafetensorsWriter.write(file, entries, meta);
    }
}
