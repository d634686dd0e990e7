package facm.training;

import com.google.gson.JsonObject;
import facm.autograd.Gradients;
import facm.backend.cpu.CpuBackend;
import facm.checkpoint.CheckpointException;
import facm.checkpoint.SafetensorsReader;
import facm.checkpoint.SafetensorsWriter;
import facm.model.ModelCheckpoint;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Train-state checkpoints: exact round trip, readable as a model file, and one-line errors for broken files. */
class TrainStateTest {
    private final Backend be = new CpuBackend(1);
    private final TrainingOps ops = HostTrainingOps.of(be);
    @TempDir
    Path dir;
    private Path file;
    private TrainOptions options;

    @BeforeEach
    void writeOne() throws IOException {
        JsonObject o = new JsonObject();
        o.addProperty("out", dir.toString());
        o.addProperty("ema", "power:0.05,classic:0.99");
        o.addProperty("seed", 5);
        options = TrainOptions.resolve(o);
        file = dir.resolve("state.safetensors");
        try (ModelWeights w = TrainingTestModels.weights(be, 1); Gradients g = new Gradients(w);
             AdamW adam = new AdamW(w, options.adamW(), ops); EmaSet emas = EmaSet.create(options.ema(), w)) {
            for (int step = 0; step < 3; step++) {
                long salt = 0;
                for (Tensor t : g.asMap().values()) {
                    be.randomNormal(t, step, salt++ << 32);
                }
                adam.update(w, g, 0.5f);
                emas.update(w);
            }
            JsonObject pending = new JsonObject();
            pending.addProperty("applied", 1);
            TrainState.write(file, w, emas, adam, options, new TrainState.Counters(3, 12, 1, 3, 5, pending));
        }
    }

    @Test
    void roundTripRestoresEveryTensorAndCounter() throws IOException {
        try (ModelWeights w = TrainingTestModels.weights(be, 99); AdamW adam = new AdamW(w, options.adamW(), ops);
             EmaSet emas = EmaSet.create(options.ema(), w)) {
            TrainState.Header h = TrainState.restore(file, w, emas, adam);
            assertEquals(3, h.counters().step());
            assertEquals(12, h.counters().dataPosition());
            assertEquals(1, h.counters().skippedSteps());
            assertEquals(5, h.counters().seed());
            assertEquals(1, h.counters().pendingMetrics().get("applied").getAsInt());
            assertEquals(options, h.options());
            assertEquals(3, adam.step());
            assertEquals(3, emas.get("power_0.05").updates());
            assertEquals(3, emas.get("classic_0.99").updates());
            try (SafetensorsReader r = SafetensorsReader.open(file)) {
                for (String k : adam.firstMoments().keySet()) {
                    assertArrayEquals(r.readFloats(k), be.download(w.get(k)), k);
                    assertArrayEquals(r.readFloats("adam.m." + k), be.download(adam.firstMoments().get(k)));
                    assertArrayEquals(r.readFloats("adam.v." + k), be.download(adam.secondMoments().get(k)));
                    for (Ema e : emas.all()) {
                        assertArrayEquals(r.readFloats(TrainState.emaKey(e.name(), k)),
                                be.download(e.weights().get(k)));
                    }
                }
            }
        }
        assertEquals(3, TrainState.peek(file).counters().step());
    }

    @Test
    void modelLoaderReadsTheModelAndAnyEmaCopy() throws IOException {
        try (SafetensorsReader r = SafetensorsReader.open(file);
             ModelWeights model = ModelCheckpoint.load(file, ModelCheckpoint.configOf(file, null), be);
             ModelWeights ema = ModelCheckpoint.load(file, TrainingTestModels.micro(), be, "ema.power_0.05.")) {
            String k = "blocks.0.attn.proj.weight";
            assertArrayEquals(r.readFloats(k), be.download(model.get(k)));
            assertArrayEquals(r.readFloats("ema.power_0.05." + k), be.download(ema.get(k)));
            assertArrayEquals(be.download(model.get("pos_embed")), be.download(ema.get("pos_embed")));
        }
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> ModelCheckpoint.load(file, TrainingTestModels.micro(), be, "ema.nope."));
        assertTrue(e.getMessage().contains("ema.nope."), e.getMessage());
    }

    private String restoreError(Path f) {
        try (ModelWeights w = TrainingTestModels.weights(be, 99); AdamW adam = new AdamW(w, options.adamW(), ops);
             EmaSet emas = EmaSet.create(options.ema(), w)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> TrainState.restore(f, w, emas, adam));
            assertTrue(!e.getMessage().contains("\n"), "one line: " + e.getMessage());
            return e.getMessage();
        }
    }

    @Test
    void truncatedFileIsOneLine() throws IOException {
        Path cut = dir.resolve("cut.safetensors");
        Files.copy(file, cut);
        try (FileChannel ch = FileChannel.open(cut, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 100);
        }
        assertTrue(restoreError(cut).contains("is truncated"));
    }

    @Test
    void unknownOrMissingKeysAreNamed() throws IOException {
        Path extra = rewrite("extra", (entries, meta) -> entries.add(SafetensorsWriter.Entry.f32("adam.x.y",
                new int[] {1}, new float[] {1})));
        assertTrue(restoreError(extra).startsWith("unexpected key 'adam.x.y'"), restoreError(extra));
        Path missing = rewrite("missing", (entries, meta) -> entries.removeIf(
                en -> en.name().equals("adam.v.x_embedder.proj.bias")));
        assertTrue(restoreError(missing).startsWith("missing key 'adam.v.x_embedder.proj.bias'"),
                restoreError(missing));
    }

    @Test
    void metadataProblemsAreNamed() throws IOException {
        Path plain = dir.resolve("model.safetensors");
        try (ModelWeights w = TrainingTestModels.weights(be, 1)) {
            ModelCheckpoint.save(w, plain, Map.of());
        }
        assertTrue(restoreError(plain).contains("is not a training checkpoint"), restoreError(plain));
        Path future = rewrite("future", (entries, meta) -> meta.put("format_version", "99"));
        assertTrue(restoreError(future).contains("format version 99"));
        Path counters = rewrite("counters", (entries, meta) -> meta.put("counters", "{\"step\":1}"));
        assertTrue(restoreError(counters).contains("bad training-checkpoint metadata"), restoreError(counters));
        Path emas = rewrite("emas", (entries, meta) -> meta.put("emas", "[]"));
        assertTrue(restoreError(emas).contains("has EMAs []"), restoreError(emas));
    }

    @Test
    void otherModelConfigIsRefused() throws IOException {
        try (ModelWeights w = ModelWeights.philox(TrainingTestModels.micro().withDepth(2), be, 1);
             AdamW adam = new AdamW(w, options.adamW(), ops); EmaSet emas = EmaSet.create(options.ema(), w)) {
            CheckpointException e = assertThrows(CheckpointException.class,
                    () -> TrainState.restore(file, w, emas, adam));
            assertTrue(e.getMessage().contains("holds model micro"), e.getMessage());
        }
    }

    private interface Edit {
        void apply(List<SafetensorsWriter.Entry> entries, Map<String, String> meta);
    }

    /** A copy of the state file with its tensor list or metadata edited. */
    private Path rewrite(String name, Edit edit) throws IOException {
        Path out = dir.resolve(name + ".safetensors");
        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            List<SafetensorsWriter.Entry> entries = new ArrayList<>();
            r.tensors().values().forEach(t -> entries.add(SafetensorsWriter.Entry.of(t)));
            Map<String, String> meta = new LinkedHashMap<>(r.metadata());
            edit.apply(entries, meta);
            SafetensorsWriter.write(out, entries, meta);
        }
        return out;
    }
}
