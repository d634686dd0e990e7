package facm.checkpoint;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * The model weights of one checkpoint file, whatever its format: a safetensors file (all its tensors), or a
 * torch.save file from which the loader rule of facm-spec.md §8 picks the state dict:
 * <ol>
 * <li>{@code emas} present: its tensors {@code ema_models.1.ema_model.<key>} (the σ_rel = 0.2 EMA), prefix stripped;
 * <li>else {@code ema}; else {@code model}; else the top level itself when it holds tensors.
 * </ol>
 * {@link Which#EMA} / {@link Which#MODEL} force a branch. Keys lose leading {@code module.} (DDP) and
 * {@code _orig_mod.} (torch.compile) prefixes. Entries that are not tensors are skipped, and so is the EMA
 * bookkeeping beside {@code ema_model} ({@code ema_models.1.initted}, {@code .step}). Tensor views are valid until
 * {@link #close()}.
 */
public final class StateDict implements AutoCloseable {

    /** Which weights to take from a training checkpoint. */
    public enum Which {
        AUTO, EMA, MODEL;

        public static Which parse(String s) {
            return switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "auto" -> AUTO;
                case "ema" -> EMA;
                case "model" -> MODEL;
                default -> throw new IllegalArgumentException("--which must be auto, ema or model, not '" + s + "'");
            };
        }
    }

    static final String EMAS_PREFIX = "ema_models.1.ema_model.";

    private final Path file;
    private final String chosen;
    private final Map<String, CheckpointTensor> tensors;
    private final Map<String, String> metadata;
    private final Runnable closer;

    private StateDict(Path file, String chosen, Map<String, CheckpointTensor> tensors, Map<String, String> metadata,
                      Runnable closer) {
        this.file = file;
        this.chosen = chosen;
        this.tensors = Collections.unmodifiableMap(tensors);
        this.metadata = Collections.unmodifiableMap(metadata);
        this.closer = closer;
    }

    /** Opens {@code file}, telling the formats apart by their first bytes, and applies the loader rule. */
    public static StateDict open(Path file, Which which) throws IOException {
        byte[] head = new byte[8];
        long size;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            size = ch.size();
            ch.read(java.nio.ByteBuffer.wrap(head));
        }
        MemorySegment start = MemorySegment.ofArray(head).asSlice(0, Math.min(8, size));
        if (ZipArchive.looksLikeZip(start)) {
            TorchCheckpoint pt = TorchCheckpoint.open(file);
            try {
                StateDict sd = fromTorch(pt, which);
                pt = null;
                return sd;
            } finally {
                if (pt != null) {
                    pt.close();
                }
            }
        }
        if (size >= 2 && (head[0] & 0xFF) == 0x80 && head[1] >= 2 && head[1] <= 5) {
            throw new CheckpointException(file + " is a bare pickle (torch.save before PyTorch 1.6, or "
                    + "_use_new_zipfile_serialization=False); re-save it with a current torch.save");
        }
        SafetensorsReader st = SafetensorsReader.open(file);
        try {
            if (which != Which.AUTO) {
                throw new CheckpointException(file + " is a safetensors file: it holds one state dict, so --which "
                        + which.name().toLowerCase(Locale.ROOT) + " does not apply");
            }
            Map<String, CheckpointTensor> out = new LinkedHashMap<>();
            for (CheckpointTensor t : st.tensors().values()) {
                put(file, out, stripWrappers(t.name()), t);
            }
            StateDict sd = new StateDict(file, "all tensors", out, st.metadata(), st::close);
            st = null;
            return sd;
        } finally {
            if (st != null) {
                st.close();
            }
        }
    }

    private static StateDict fromTorch(TorchCheckpoint pt, Which which) {
        Path file = pt.file();
        if (!(pt.root() instanceof Map<?, ?> top)) {
            throw new CheckpointException(file + " holds " + TorchGlobals.describe(pt.root())
                    + " at the top level, not a dict of tensors");
        }
        boolean hasEmas = top.get("emas") instanceof Map<?, ?>;
        boolean hasEma = top.get("ema") instanceof Map<?, ?>;
        boolean hasModel = top.get("model") instanceof Map<?, ?>;
        boolean topHasTensors = top.values().stream().anyMatch(TorchCheckpoint::isTensor);
        Map<String, CheckpointTensor> out = new LinkedHashMap<>();
        String chosen;
        if ((which == Which.AUTO || which == Which.EMA) && hasEmas) {
            chosen = "'emas' (" + EMAS_PREFIX + "*)";
            take(pt, (Map<?, ?>) top.get("emas"), EMAS_PREFIX, out);
            if (out.isEmpty()) {
                throw new CheckpointException(file + ": 'emas' has no '" + EMAS_PREFIX + "*' tensors (keys: "
                        + keyList((Map<?, ?>) top.get("emas")) + ")");
            }
        } else if ((which == Which.AUTO || which == Which.EMA) && hasEma) {
            chosen = "'ema'";
            take(pt, (Map<?, ?>) top.get("ema"), "", out);
        } else if ((which == Which.AUTO || which == Which.MODEL) && hasModel) {
            chosen = "'model'";
            take(pt, (Map<?, ?>) top.get("model"), "", out);
        } else if (which == Which.AUTO && topHasTensors) {
            chosen = "the top level";
            take(pt, top, "", out);
        } else {
            String wanted = switch (which) {
                case EMA -> "no 'emas' or 'ema' entry";
                case MODEL -> "no 'model' entry";
                case AUTO -> "no state dict ('emas', 'ema', 'model' or tensors at the top level)";
            };
            throw new CheckpointException(file + " has " + wanted + "; its top-level keys are " + keyList(top));
        }
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("source", String.valueOf(file.getFileName()));
        meta.put("selected", chosen);
        return new StateDict(file, chosen, out, meta, pt::close);
    }

    /** Tensors of {@code dict} whose key starts with {@code prefix}, prefix and wrapper prefixes removed. */
    private static void take(TorchCheckpoint pt, Map<?, ?> dict, String prefix, Map<String, CheckpointTensor> out) {
        for (Map.Entry<?, ?> e : dict.entrySet()) {
            if (!(e.getKey() instanceof String key) || !key.startsWith(prefix)
                    || !TorchCheckpoint.isTensor(e.getValue())) {
                continue;
            }
            String name = stripWrappers(key.substring(prefix.length()));
            put(pt.file(), out, name, pt.tensor(key, e.getValue()).renamed(name));
        }
    }

    private static void put(Path file, Map<String, CheckpointTensor> out, String name, CheckpointTensor t) {
        CheckpointTensor before = out.putIfAbsent(name, t.renamed(name));
        if (before != null) {
            throw new CheckpointException(file + ": two tensors become '" + name + "' once 'module.' and "
                    + "'_orig_mod.' prefixes are removed");
        }
    }

    /** Removes leading "module." (DistributedDataParallel) and "_orig_mod." (torch.compile), in any nesting. */
    static String stripWrappers(String key) {
        String k = key;
        while (true) {
            if (k.startsWith("module.")) {
                k = k.substring("module.".length());
            } else if (k.startsWith("_orig_mod.")) {
                k = k.substring("_orig_mod.".length());
            } else {
                return k;
            }
        }
    }

    private static String keyList(Map<?, ?> m) {
        List<String> keys = new ArrayList<>();
        for (Object k : m.keySet()) {
            keys.add(String.valueOf(k));
        }
        if (keys.size() > 12) {
            int more = keys.size() - 10;
            keys = new ArrayList<>(keys.subList(0, 10));
            keys.add("... " + more + " more");
        }
        return keys.toString();
    }

    // ---------------------------------------------------------------- access

    public Path file() {
        return file;
    }

    /** What was taken, for messages: "'ema'", "'emas' (ema_models.1.ema_model.*)", "'model'", ... */
    public String chosen() {
        return chosen;
    }

    /** Tensors under their model key names, in file order. */
    public Map<String, CheckpointTensor> tensors() {
        return tensors;
    }

    public CheckpointTensor tensor(String name) {
        CheckpointTensor t = tensors.get(name);
        if (t == null) {
            throw new CheckpointException("missing key '" + name + "' in " + file);
        }
        return t;
    }

    /** Name → shape, for {@link StateDictCheck#verify}. */
    public Map<String, int[]> shapes() {
        Map<String, int[]> m = new LinkedHashMap<>();
        tensors.forEach((k, t) -> m.put(k, t.shape()));
        return m;
    }

    /** Safetensors: its __metadata__. torch.save: "source" and "selected". */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** "658 tensors, 2.70 GB fp32" (several dtypes: "2.70 GB fp32 + 16 B int64"). */
    public String summary() {
        Map<CheckpointDType, Long> bytes = new TreeMap<>();
        tensors.values().forEach(t -> bytes.merge(t.dtype(), t.byteSize(), Long::sum));
        return summary(tensors.size(), bytes);
    }

    /** "N tensors, SIZE TYPE + SIZE TYPE" from per-type byte counts; shared with what writers report. */
    public static String summary(int count, Map<CheckpointDType, Long> bytesByType) {
        List<String> parts = new ArrayList<>();
        new TreeMap<>(bytesByType).forEach((d, b) -> parts.add(humanBytes(b) + " " + d.shortName()));
        return count + (count == 1 ? " tensor" : " tensors") + (parts.isEmpty() ? "" : ", "
                + String.join(" + ", parts));
    }

    /** Decimal units, as disk sizes are usually quoted: 2.70 GB, 4.61 MB. */
    public static String humanBytes(long b) {
        if (b >= 1_000_000_000L) {
            return String.format(Locale.ROOT, "%.2f GB", b / 1e9);
        }
        if (b >= 1_000_000L) {
            return String.format(Locale.ROOT, "%.2f MB", b / 1e6);
        }
        if (b >= 1_000L) {
            return String.format(Locale.ROOT, "%.2f kB", b / 1e3);
        }
        return b + " B";
    }

    /** Unmaps the file; tensor views become unusable. */
    @Override
    public void close() {
        closer.run();
    }

}
