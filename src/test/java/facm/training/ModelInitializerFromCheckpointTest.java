package facm.training;

import facm.backend.cpu.CpuBackend;
import facm.checkpoint.CheckpointException;
import facm.checkpoint.SafetensorsWriter;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link ModelInitializer#initializeFrom}: an FM checkpoint without the auxiliary time embedder grows one that starts
 * as a no-op (facm-spec.md §3.7), so the student's output equals the teacher's bit for bit for every r; every other
 * key mismatch is a one-line error.
 */
class ModelInitializerFromCheckpointTest {
    private static final int B = 3;
    private final Backend be = new CpuBackend(1);

    private static ModelConfig plain() {
        return TrainingTestModels.micro();
    }

    private static ModelConfig aux() {
        ModelConfig c = plain();
        return new ModelConfig("micro-aux", c.depth(), c.hidden(), c.heads(), c.patch(), c.inputSize(), c.inChannels(),
                c.numClasses(), c.qkNorm(), c.rope(), true);
    }

    /** The model's tensors under {@code prefix}, leaving out the keys {@code drop} matches, plus {@code extra}. */
    private Path write(Path file, ModelWeights w, String prefix, Predicate<String> drop, Map<String, float[]> extra)
            throws IOException {
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        for (ParameterTable.Entry e : w.table().entries()) {
            if (!drop.test(e.key())) {
                entries.add(SafetensorsWriter.Entry.f32(prefix + e.key(), e.shape(), be.download(w.get(e.key()))));
            }
        }
        extra.forEach((k, v) -> entries.add(SafetensorsWriter.Entry.f32(k, new int[] {v.length}, v)));
        SafetensorsWriter.write(file, entries, Map.of());
        return file;
    }

    private Path write(Path file, ModelWeights w) throws IOException {
        return write(file, w, "", k -> false, Map.of());
    }

    private float[] forward(ModelWeights w, float[] r) {
        ModelConfig c = w.config();
        int n = B * c.inChannels() * c.inputSize() * c.inputSize();
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) Philox.normal(21, i);
        }
        try (Tensor xt = be.upload("x", x, B, c.inChannels(), c.inputSize(), c.inputSize());
             Tensor t = be.upload("t", new float[] {0.1f, 0.55f, 1.7f}, B);
             Tensor y = be.upload("y", new int[] {0, 2, c.nullClass()}, B);
             Tensor rt = r == null ? null : be.upload("r", r, B);
             Tensor out = new LightningDiT(w).forward(xt, t, y, rt)) {
            return be.download(out);
        }
    }

    @Test
    void studentWithANewAuxiliaryEmbedderMatchesTheTeacherForEveryR(@TempDir Path dir) throws IOException {
        try (ModelWeights teacher = ModelWeights.philox(plain(), be, 8)) {
            Path file = write(dir.resolve("teacher.safetensors"), teacher);
            float[] want = forward(teacher, null);
            try (ModelWeights student = ModelInitializer.initializeFrom(file, aux(), be, 5);
                 ModelWeights fresh = ModelInitializer.initialize(aux(), be, 5)) {
                student.requireComplete();
                for (float[] r : new float[][] {{0f, 0f, 0f}, {1f, 1f, 1f}, {0.37f, 0.9f, 0.02f}, {-3f, 2f, 50f}}) {
                    assertArrayEquals(want, forward(student, r), "r = " + java.util.Arrays.toString(r));
                }
                for (ParameterTable.Entry e : student.table().entries()) {
                    float[] got = be.download(student.get(e.key()));
                    if (e.key().startsWith("r_embedder.")) {
                        assertArrayEquals(be.download(fresh.get(e.key())), got, "§3.6 values for " + e.key());
                    } else {
                        assertArrayEquals(be.download(teacher.get(e.key())), got, "teacher's " + e.key());
                    }
                }
                assertTrue(anyNonZero(be.download(student.get("r_embedder.mlp.0.weight"))),
                        "the r-embedder's first linear is initialized, not zero");
                assertFalse(anyNonZero(be.download(student.get("r_embedder.mlp.2.weight"))));
                assertFalse(anyNonZero(be.download(student.get("r_embedder.mlp.2.bias"))));
            }
        }
    }

    @Test
    void aCheckpointWithTheAuxiliaryEmbedderKeepsIts(@TempDir Path dir) throws IOException {
        try (ModelWeights teacher = ModelWeights.philox(aux(), be, 8)) {
            Path file = write(dir.resolve("aux.safetensors"), teacher);
            try (ModelWeights student = ModelInitializer.initializeFrom(file, aux(), be, 5)) {
                for (ParameterTable.Entry e : student.table().entries()) {
                    assertArrayEquals(be.download(teacher.get(e.key())), be.download(student.get(e.key())), e.key());
                }
            }
        }
    }

    @Test
    void loadsAPrefixedCopySuchAsAnEma(@TempDir Path dir) throws IOException {
        try (ModelWeights model = ModelWeights.philox(plain(), be, 8);
             ModelWeights ema = ModelWeights.philox(plain(), be, 9)) {
            Path file = dir.resolve("train.safetensors");
            List<SafetensorsWriter.Entry> entries = new ArrayList<>();
            for (ParameterTable.Entry e : model.table().entries()) {
                entries.add(SafetensorsWriter.Entry.f32(e.key(), e.shape(), be.download(model.get(e.key()))));
                entries.add(SafetensorsWriter.Entry.f32("ema.power_0.2." + e.key(), e.shape(),
                        be.download(ema.get(e.key()))));
            }
            SafetensorsWriter.write(file, entries, Map.of());
            try (ModelWeights student = ModelInitializer.initializeFrom(file, "ema.power_0.2.", aux(), be, 5)) {
                String key = "blocks.0.attn.qkv.weight";
                assertArrayEquals(be.download(ema.get(key)), be.download(student.get(key)));
                student.requireComplete();
            }
        }
    }

    @Test
    void otherMismatchesAreOneLineErrors(@TempDir Path dir) throws IOException {
        try (ModelWeights plainW = ModelWeights.philox(plain(), be, 8);
             ModelWeights auxW = ModelWeights.philox(aux(), be, 8)) {
            Path partial = write(dir.resolve("partial.safetensors"), auxW, "",
                    k -> k.equals("r_embedder.mlp.2.bias"), Map.of());
            assertOneLineError(partial, aux(), "missing key 'r_embedder.mlp.2.bias'");

            Path extra = write(dir.resolve("extra.safetensors"), plainW, "", k -> false,
                    Map.of("head.scale", new float[] {1f, 2f}));
            assertOneLineError(extra, aux(), "unexpected key 'head.scale'");

            Path noQkv = write(dir.resolve("noqkv.safetensors"), plainW, "",
                    k -> k.equals("blocks.0.attn.qkv.bias"), Map.of());
            assertOneLineError(noQkv, aux(), "missing key 'blocks.0.attn.qkv.bias'");

            Path auxFile = write(dir.resolve("aux.safetensors"), auxW);
            assertOneLineError(auxFile, plain(), "unexpected key 'r_embedder.");
        }
    }

    private void assertOneLineError(Path file, ModelConfig target, String expected) {
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> ModelInitializer.initializeFrom(file, target, be, 5).close());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }

    private static boolean anyNonZero(float[] v) {
        for (float f : v) {
            if (f != 0f) {
                return true;
            }
        }
        return false;
    }
}
