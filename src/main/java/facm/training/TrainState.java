package facm.training;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import facm.checkpoint.CheckpointDType;
import facm.checkpoint.CheckpointException;
import facm.checkpoint.CheckpointTensor;
import facm.checkpoint.SafetensorsReader;
import facm.checkpoint.SafetensorsWriter;
import facm.checkpoint.StateDictCheck;
import facm.checkpoint.TensorPayload;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A training checkpoint: one safetensors file, written atomically, that resumes a run exactly. Tensors (all F32): the
 * model under the official keys (fixed tables included, so {@code sample --ckpt} reads it like any model file),
 * every EMA copy's trainable tensors as {@code ema.<name>.<key>}, and AdamW's moments as {@code adam.m.<key>} and
 * {@code adam.v.<key>}. Metadata: {@code format}, {@code format_version}, {@code config} (the model),
 * {@code train_options}, {@code counters} (step, data position, skipped steps, AdamW's step, seed, the pending metrics
 * sums) and {@code emas} (name, spec and update count of each copy). There is no other random state: every random
 * number of a step is Philox of (seed, step, sample index), and the loader's order is a function of (seed, position).
 */
public final class TrainState {
    public static final String FORMAT = "facm-engine/train-state";
    public static final int FORMAT_VERSION = 1;

    private TrainState() {
    }

    /** The scalars of a run that a checkpoint restores. {@code pendingMetrics} is {@link MetricsLog}'s state. */
    public record Counters(int step, long dataPosition, long skippedSteps, int adamStep, long seed,
                           JsonObject pendingMetrics) {
    }

    /** What {@link #peek} reads without touching any tensor: enough to build the objects to restore into. */
    public record Header(ModelConfig config, TrainOptions options, Counters counters, Map<String, Long> emaUpdates) {
    }

    // ---------------------------------------------------------------- writing

    /** Writes a checkpoint of the whole run to {@code file} (atomically: a crash leaves the previous file intact). */
    public static void write(Path file, ModelWeights model, EmaSet emas, OptimizerMoments adam, TrainOptions options,
                             Counters counters) throws IOException {
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        for (ParameterTable.Entry e : model.table().entries()) {
            entries.add(deviceEntry(e.key(), model.get(e.key())));
        }
        JsonArray emaList = new JsonArray();
        for (Ema ema : emas.all()) {
            for (ParameterTable.Entry e : trainable(model)) {
                entries.add(deviceEntry(emaKey(ema.name(), e.key()), ema.weights().get(e.key())));
            }
            JsonObject o = new JsonObject();
            o.addProperty("name", ema.name());
            o.addProperty("spec", ema.spec());
            o.addProperty("updates", ema.updates());
            emaList.add(o);
        }
        for (ParameterTable.Entry e : trainable(model)) {
            entries.add(deviceEntry("adam.m." + e.key(), adam.firstMoments().get(e.key())));
            entries.add(deviceEntry("adam.v." + e.key(), adam.secondMoments().get(e.key())));
        }
        JsonObject c = new JsonObject();
        c.addProperty("step", counters.step());
        c.addProperty("data_position", counters.dataPosition());
        c.addProperty("skipped_steps", counters.skippedSteps());
        c.addProperty("adam_step", counters.adamStep());
        c.addProperty("seed", counters.seed());
        c.add("pending_metrics", counters.pendingMetrics() == null ? new JsonObject() : counters.pendingMetrics());
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", FORMAT);
        meta.put("format_version", Integer.toString(FORMAT_VERSION));
        meta.put("config", model.config().toJson());
        meta.put("train_options", options.toJson());
        meta.put("counters", c.toString());
        meta.put("emas", emaList.toString());
        SafetensorsWriter.write(file, entries, meta);
    }

    public static String emaKey(String emaName, String key) {
        return "ema." + emaName + "." + key;
    }

    private static List<ParameterTable.Entry> trainable(ModelWeights model) {
        return model.table().entries().stream().filter(e -> e.kind() == ParameterTable.Kind.TRAINABLE).toList();
    }

    /**
     * An F32 entry whose bytes are downloaded when the writer reaches it and dropped after its last chunk, so the
     * host holds one tensor at a time, not the whole (possibly multi-GB) state.
     */
    private static SafetensorsWriter.Entry deviceEntry(String name, Tensor t) {
        long bytes = t.numel() * 4L;
        TensorPayload payload = new TensorPayload() {
            private float[] host;

            @Override
            public long byteSize() {
                return bytes;
            }

            @Override
            public void copyTo(long from, MemorySegment dst) {
                if (host == null) {
                    host = t.backend().download(t);
                }
                TensorPayload.of(host).copyTo(from, dst);
                if (from + dst.byteSize() >= bytes) {
                    host = null;
                }
            }
        };
        return new SafetensorsWriter.Entry(name, CheckpointDType.F32, t.shape(), payload);
    }

    // ---------------------------------------------------------------- reading

    /** Reads and validates the metadata of a checkpoint; a file that is not a train state gets a one-line error. */
    public static Header peek(Path file) throws IOException {
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            return header(file, r.metadata());
        }
    }

    private static Header header(Path file, Map<String, String> meta) {
        String format = meta.get("format");
        if (!FORMAT.equals(format)) {
            throw new CheckpointException(file + " is not a training checkpoint (format "
                    + (format == null ? "missing" : "'" + format + "'") + ", expected '" + FORMAT + "'): resume "
                    + "needs a file written by train; use --init to start from model weights");
        }
        String version = meta.get("format_version");
        if (!Integer.toString(FORMAT_VERSION).equals(version)) {
            throw new CheckpointException(file + " has train-state format version " + version + "; this build reads "
                    + "version " + FORMAT_VERSION);
        }
        try {
            ModelConfig config = ModelConfig.fromJson(required(file, meta, "config"));
            TrainOptions options = TrainOptions.fromJson(required(file, meta, "train_options"));
            JsonObject c = TrainOptions.parseObject(required(file, meta, "counters"), "counters");
            Counters counters = new Counters(c.get("step").getAsInt(), c.get("data_position").getAsLong(),
                    c.get("skipped_steps").getAsLong(), c.get("adam_step").getAsInt(), c.get("seed").getAsLong(),
                    c.has("pending_metrics") ? c.getAsJsonObject("pending_metrics") : new JsonObject());
            if (counters.step() < 0 || counters.dataPosition() < 0 || counters.skippedSteps() < 0
                    || counters.adamStep() < 0 || counters.adamStep() > counters.step()) {
                throw new IllegalArgumentException("inconsistent counters " + c);
            }
            Map<String, Long> emaUpdates = new LinkedHashMap<>();
            JsonElement list = com.google.gson.JsonParser.parseString(required(file, meta, "emas"));
            for (JsonElement e : list.getAsJsonArray()) {
                JsonObject o = e.getAsJsonObject();
                emaUpdates.put(o.get("name").getAsString(), o.get("updates").getAsLong());
            }
            return new Header(config, options, counters, emaUpdates);
        } catch (CheckpointException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new CheckpointException(file + ": bad training-checkpoint metadata: " + e.getMessage(), e);
        }
    }

    private static String required(Path file, Map<String, String> meta, String key) {
        String v = meta.get(key);
        if (v == null) {
            throw new CheckpointException(file + ": training checkpoint lacks the '" + key + "' metadata");
        }
        return v;
    }

    /**
     * Restores a checkpoint into objects built for it (same config, same EMA list): model and EMA weights, AdamW
     * moments and step, EMA update counts. The file's tensor set must be exactly the expected one (a missing, extra
     * or misshapen tensor is a one-line error naming it) before anything is changed. Returns the header.
     */
    public static Header restore(Path file, ModelWeights model, EmaSet emas, OptimizerMoments adam)
            throws IOException {
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            Header h = header(file, r.metadata());
            if (!h.config().equals(model.config())) {
                throw new CheckpointException(file + " holds model " + h.config().summary() + ", not "
                        + model.config().summary());
            }
            List<String> names = emas.all().stream().map(Ema::name).toList();
            if (!names.equals(List.copyOf(h.emaUpdates().keySet()))) {
                throw new CheckpointException(file + " has EMAs " + h.emaUpdates().keySet() + ", this run has "
                        + names);
            }
            StateDictCheck.verify(expectedShapes(model, emas), r.shapes(), file.toString());
            for (CheckpointTensor t : r.tensors().values()) {
                if (t.dtype() != CheckpointDType.F32) {
                    throw new CheckpointException(file + ": tensor " + t.describe() + " should be F32");
                }
            }
            for (ParameterTable.Entry e : trainable(model)) {
                String k = e.key();
                model.set(k, r.readFloats(k));
                for (Ema ema : emas.all()) {
                    ema.weights().set(k, r.readFloats(emaKey(ema.name(), k)));
                }
                adam.restoreMoments(k, r.readFloats("adam.m." + k), r.readFloats("adam.v." + k));
            }
            for (Ema ema : emas.all()) {
                ema.restoreUpdates(h.emaUpdates().get(ema.name()));
            }
            adam.restoreStep(h.counters().adamStep());
            return h;
        }
    }

    private static Map<String, int[]> expectedShapes(ModelWeights model, EmaSet emas) {
        Map<String, int[]> m = new LinkedHashMap<>(model.table().shapes());
        for (Ema ema : emas.all()) {
            for (ParameterTable.Entry e : trainable(model)) {
                m.put(emaKey(ema.name(), e.key()), e.shape());
            }
        }
        for (ParameterTable.Entry e : trainable(model)) {
            m.put("adam.m." + e.key(), e.shape());
            m.put("adam.v." + e.key(), e.shape());
        }
        return m;
    }

    /**
     * Points {@code last} at {@code file}: a hard link made under a temporary name and renamed over {@code last}
     * (atomic, no second copy of a multi-GB file); a copy then rename where hard links are not supported.
     */
    static void linkOrCopy(Path file, Path last) throws IOException {
        Path tmp = last.resolveSibling("." + last.getFileName() + ".link.tmp");
        Files.deleteIfExists(tmp);
        try {
            Files.createLink(tmp, file);
        } catch (UnsupportedOperationException | IOException e) {
            Files.copy(file, tmp, StandardCopyOption.REPLACE_EXISTING);
        }
        Files.move(tmp, last, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
