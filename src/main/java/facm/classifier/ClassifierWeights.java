package facm.classifier;

import facm.checkpoint.CheckpointException;
import facm.checkpoint.SafetensorsWriter;
import facm.checkpoint.StateDict;
import facm.checkpoint.StateDictCheck;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The trainable tensors of one {@link ClassifierConfig} on one backend, keyed as
 * {@link ClassifierConfig#parameterShapes()}; owns them ({@link #close()} frees every one). Files are safetensors
 * with the config and {@code format = facm-engine/classifier} in the metadata, next to whatever the trainer adds
 * (accuracy, data, command).
 */
public final class ClassifierWeights implements AutoCloseable {
    /** The metadata value that marks a classifier file. */
    public static final String FORMAT = "facm-engine/classifier";

    private final ClassifierConfig config;
    private final Backend backend;
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();

    private ClassifierWeights(ClassifierConfig config, Backend backend) {
        this.config = config;
        this.backend = backend;
    }

    /**
     * Fresh weights, a pure function of (config, seed) on every backend ({@link Backend#randomNormal}: tensor k of
     * the table draws counters from k·2³²): linear weights N(0, 1/fan_in), the residual branches' output
     * projections (attn.proj, mlp.w3) further scaled by 1/√(2·depth) so the stream's variance grows slowly with
     * depth, norm weights 1, biases 0, and the head all zeros (uniform logits at the start, as ViT does).
     */
    public static ClassifierWeights initialize(ClassifierConfig config, Backend backend, long seed) {
        ClassifierWeights w = new ClassifierWeights(config, backend);
        try {
            long k = 0;
            for (Map.Entry<String, int[]> e : config.parameterShapes().entrySet()) {
                String key = e.getKey();
                int[] shape = e.getValue();
                Tensor t = backend.empty(key, DType.F32, shape);
                w.tensors.put(key, t);
                if (key.endsWith("norm1.weight") || key.endsWith("norm2.weight") || key.equals("norm.weight")) {
                    backend.fill(t, 1f);
                } else if (key.endsWith(".bias") || key.startsWith("head.")) {
                    backend.fill(t, 0f);
                } else {
                    backend.randomNormal(t, seed, k << 32);
                    double scale = 1.0 / Math.sqrt(shape[1]);
                    if (key.endsWith("attn.proj.weight") || key.endsWith("mlp.w3.weight")) {
                        scale /= Math.sqrt(2.0 * config.depth());
                    }
                    backend.affine(t, (float) scale, 0f, t);
                }
                k++;
            }
        } catch (RuntimeException ex) {
            w.close();
            throw ex;
        }
        return w;
    }

    /** A classifier file's config, weights and metadata. */
    public record Loaded(ClassifierWeights weights, Map<String, String> metadata) {
    }

    /**
     * Reads a classifier file written by {@link #save}; {@code source} names it in errors (the file, or the jar
     * resource it was copied from). One-line {@link CheckpointException}s for another kind of file, a missing or bad
     * config, and missing, unexpected or misshapen tensors.
     */
    public static Loaded load(Path file, String source, Backend backend) throws IOException {
        try (StateDict sd = StateDict.open(file, StateDict.Which.AUTO)) {
            Map<String, String> meta = sd.metadata();
            String format = meta.get("format");
            if (!FORMAT.equals(format)) {
                throw new CheckpointException(source + " is not a classifier file (metadata format "
                        + (format == null ? "missing" : "'" + format + "'") + ", expected '" + FORMAT
                        + "'): train one with train-classifier");
            }
            String json = meta.get("config");
            if (json == null) {
                throw new CheckpointException(source + " has no classifier config in its metadata");
            }
            ClassifierConfig config;
            try {
                config = ClassifierConfig.fromJson(json);
            } catch (IllegalArgumentException e) {
                throw new CheckpointException(source + ": " + e.getMessage(), e);
            }
            StateDictCheck.verify(config.parameterShapes(), sd.shapes(), source);
            ClassifierWeights w = new ClassifierWeights(config, backend);
            try {
                for (Map.Entry<String, int[]> e : config.parameterShapes().entrySet()) {
                    float[] values = sd.tensor(e.getKey()).toFloats();
                    for (float v : values) {
                        if (!Float.isFinite(v)) {
                            throw new CheckpointException(source + ": tensor '" + e.getKey() + "' holds " + v);
                        }
                    }
                    w.tensors.put(e.getKey(), backend.upload(e.getKey(), values, e.getValue()));
                }
            } catch (RuntimeException ex) {
                w.close();
                throw ex;
            }
            return new Loaded(w, new LinkedHashMap<>(meta));
        }
    }

    /** Writes every tensor as fp32 with the config, the format marker and {@code extraMetadata}, atomically. */
    public void save(Path file, Map<String, String> extraMetadata) throws IOException {
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            entries.add(SafetensorsWriter.Entry.f32(e.getKey(), e.getValue().shape(), backend.download(e.getValue())));
        }
        Map<String, String> meta = new LinkedHashMap<>(extraMetadata);
        meta.put("format", FORMAT);
        meta.put("config", config.toJson());
        SafetensorsWriter.write(file, entries, meta);
    }

    public ClassifierConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    /** The tensor for {@code key}; a clear error for a name the config does not have. */
    public Tensor get(String key) {
        Tensor t = tensors.get(key);
        if (t == null) {
            throw new IllegalArgumentException("classifier has no tensor '" + key + "'");
        }
        return t;
    }

    /** Replaces tensor {@code key} with host values of its shape (tests, finite differences, hand-made weights). */
    public void set(String key, float[] values) {
        Tensor old = get(key);
        if (values.length != old.numel()) {
            throw new IllegalArgumentException("classifier tensor '" + key + "': " + values.length
                    + " values for " + old.describe());
        }
        tensors.put(key, backend.upload(key, values, old.shape()));
        old.close();
    }

    /** Every tensor by key, in table order. */
    public Map<String, Tensor> asMap() {
        return Collections.unmodifiableMap(tensors);
    }

    @Override
    public void close() {
        for (Tensor t : tensors.values()) {
            t.close();
        }
        tensors.clear();
    }
}
