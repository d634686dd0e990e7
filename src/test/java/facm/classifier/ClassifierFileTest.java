package facm.classifier;

import facm.backend.cpu.CpuBackend;
import facm.checkpoint.CheckpointException;
import facm.checkpoint.SafetensorsWriter;
import facm.tensor.Philox;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Classifier files: save → load gives the same config, tensors (bit for bit), metadata and logits; every kind of bad
 * file is a one-line {@link CheckpointException} naming the file; the config's JSON round-trips and rejects bad values.
 */
class ClassifierFileTest {
    private static final CpuBackend CPU = new CpuBackend(2);
    private static final ClassifierConfig TINY = new ClassifierConfig(1, 8, 4, 8, 1, 2, 16, 4);

    @TempDir
    Path dir;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    private static Classifier randomClassifier() {
        Classifier c = Classifier.initialize(TINY, CPU, 3);
        ClassifierGradientTest.randomize(c.weights());
        return c;
    }

    private static float[] images(int n) {
        float[] v = new float[n * 64];
        for (int i = 0; i < v.length; i++) {
            v[i] = Philox.uniform(9, i) * 2 - 1;
        }
        return v;
    }

    @Test
    void saveAndLoadRoundTrip() throws Exception {
        Path file = dir.resolve("c.safetensors");
        try (Classifier a = randomClassifier()) {
            a.save(file, Map.of("test_accuracy", "0.9123", "test_data", "somewhere", "command", "train-classifier x"));
            try (Classifier b = Classifier.load(file, CPU);
                 Tensor x = CPU.upload("x", images(3), 3, 1, 8, 8);
                 Tensor la = a.logits(x); Tensor lb = b.logits(x);
                 Tensor fa = a.features(x); Tensor fb = b.features(x)) {
                assertEquals(TINY, b.config());
                for (String key : TINY.parameterShapes().keySet()) {
                    assertArrayEquals(CPU.download(a.weights().get(key)), CPU.download(b.weights().get(key)), key);
                }
                assertArrayEquals(CPU.download(la), CPU.download(lb));
                assertArrayEquals(CPU.download(fa), CPU.download(fb));
                try (Classifier.Outputs both = b.featuresAndLogits(x)) {
                    assertArrayEquals(CPU.download(lb), CPU.download(both.logits()), "one pass, same logits");
                    assertArrayEquals(CPU.download(fb), CPU.download(both.features()), "one pass, same features");
                }
                assertArrayEquals(new int[] {3, 4}, lb.shape());
                assertArrayEquals(new int[] {3, 8}, fb.shape());
                assertEquals(8, b.featureDim());
                assertEquals(4, b.numClasses());
                assertEquals("train-classifier x", b.metadata().get("command"));
                assertEquals(ClassifierWeights.FORMAT, b.metadata().get("format"));
                assertTrue(b.describe().contains("test accuracy 91.23 % on somewhere"), b.describe());
                assertTrue(b.describe().startsWith(file.toString()), b.describe());
            }
        }
    }

    @Test
    void configJsonRoundTripsAndRejectsBadValues() {
        assertEquals(TINY, ClassifierConfig.fromJson(TINY.toJson()));
        assertEquals(ClassifierConfig.fashionMnist(), ClassifierConfig.fromJson(ClassifierConfig.fashionMnist()
                .toJson()));
        var missing = assertThrows(IllegalArgumentException.class, () -> ClassifierConfig.fromJson("{\"channels\":1}"));
        assertEquals("classifier config lacks 'image_size'", missing.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ClassifierConfig.fromJson("[1,2]"));
        assertThrows(IllegalArgumentException.class, () -> ClassifierConfig.fromJson(
                TINY.toJson().replace("\"width\":8", "\"width\":\"wide\"")));
        // Odd head dimension (the CUDA attention kernels need an even one), width not a multiple of 4, bad patch.
        assertThrows(IllegalArgumentException.class, () -> new ClassifierConfig(1, 8, 4, 12, 1, 4, 16, 4));
        assertThrows(IllegalArgumentException.class, () -> new ClassifierConfig(1, 8, 4, 10, 1, 1, 16, 4));
        assertThrows(IllegalArgumentException.class, () -> new ClassifierConfig(1, 8, 3, 8, 1, 2, 16, 4));
    }

    @Test
    void wrongImagesAreAShapeError() {
        try (Classifier c = randomClassifier(); Tensor x = CPU.upload("x", images(1), 1, 1, 4, 16)) {
            var e = assertThrows(ShapeException.class, () -> c.logits(x));
            assertTrue(e.getMessage().contains("should be f32[N,1,8,8]"), e.getMessage());
        }
    }

    @Test
    void badFilesAreOneLineErrors() throws Exception {
        Path good = dir.resolve("good.safetensors");
        try (Classifier c = randomClassifier()) {
            c.save(good, Map.of());
        }
        Map<String, float[]> tensors = new LinkedHashMap<>();
        try (var sd = facm.checkpoint.StateDict.open(good, facm.checkpoint.StateDict.Which.AUTO)) {
            sd.tensors().forEach((k, t) -> tensors.put(k, t.toFloats()));
        }
        Map<String, String> meta = Map.of("format", ClassifierWeights.FORMAT, "config", TINY.toJson());

        assertOneLine(dir.resolve("absent.safetensors"), "classifier file not found");
        Path garbage = Files.writeString(dir.resolve("garbage.safetensors"), "this is not a checkpoint at all");
        assertOneLine(garbage, garbage.toString());
        assertOneLine(write("noformat", tensors, Map.of("config", TINY.toJson()), null, null),
                "is not a classifier file (metadata format missing");
        assertOneLine(write("dit", tensors, Map.of("format", "facm-engine/lightningdit"), null, null),
                "is not a classifier file (metadata format 'facm-engine/lightningdit'");
        assertOneLine(write("noconfig", tensors, Map.of("format", ClassifierWeights.FORMAT), null, null),
                "has no classifier config");
        assertOneLine(write("badconfig", tensors, Map.of("format", ClassifierWeights.FORMAT, "config", "{}"), null,
                null), "classifier config lacks 'channels'");
        assertOneLine(write("missing", tensors, meta, "head.bias", null), "missing key 'head.bias'");
        assertOneLine(write("extra", tensors, meta, null, "extra.weight"), "unexpected key 'extra.weight'");
        Map<String, float[]> nan = new LinkedHashMap<>(tensors);
        float[] bias = nan.get("head.bias").clone();
        bias[1] = Float.NaN;
        nan.put("head.bias", bias);
        assertOneLine(write("nan", nan, meta, null, null), "tensor 'head.bias' holds NaN");
    }

    /** A classifier-like file: {@code tensors} without {@code drop}, plus a [2] tensor named {@code extra}. */
    private Path write(String name, Map<String, float[]> tensors, Map<String, String> meta, String drop,
                       String extra) throws Exception {
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        Map<String, int[]> shapes = TINY.parameterShapes();
        tensors.forEach((k, v) -> {
            if (!k.equals(drop)) {
                entries.add(SafetensorsWriter.Entry.f32(k, shapes.get(k), v));
            }
        });
        if (extra != null) {
            entries.add(SafetensorsWriter.Entry.f32(extra, new int[] {2}, new float[] {1, 2}));
        }
        Path file = dir.resolve(name + ".safetensors");
        SafetensorsWriter.write(file, entries, meta);
        return file;
    }

    private static void assertOneLine(Path file, String expectedPart) {
        var e = assertThrows(CheckpointException.class, () -> Classifier.load(file, CPU));
        assertTrue(e.getMessage().contains(expectedPart), "'" + e.getMessage() + "' should contain '" + expectedPart
                + "'");
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
    }
}
