package facm.cli;

import facm.backend.cpu.CpuBackend;
import facm.checkpoint.SafetensorsReader;
import facm.classifier.Classifier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code train-classifier} end to end on the CPU with a tiny architecture and a few hundred bundled images. */
class TrainClassifierCommandTest {
    private static final String[] TINY = {"train-classifier", "--data", "fashion-mnist", "--limit", "192",
            "--test-limit", "100", "--epochs", "2", "--batch", "32", "--patch", "8", "--depth", "1", "--heads", "2",
            "--mlp", "32", "--warmup", "2", "--device", "cpu", "--seed", "5"};

    @Test
    void trainsWritesMetadataAndIsDeterministic(@TempDir Path dir) throws Exception {
        Path a = dir.resolve("a.safetensors");
        Path b = dir.resolve("sub/b.safetensors");
        assertEquals(0, Main.run(concat(TINY, "--width", "16", "--out", a.toString())));
        assertEquals(0, Main.run(concat(TINY, "--width", "16", "--out", b.toString())));
        try (SafetensorsReader ra = SafetensorsReader.open(a); SafetensorsReader rb = SafetensorsReader.open(b)) {
            for (String name : ra.names()) {
                assertArrayEquals(ra.readFloats(name), rb.readFloats(name), "same seed, same weights: " + name);
            }
        }
        try (CpuBackend cpu = new CpuBackend(2); Classifier c = Classifier.load(a, cpu)) {
            var meta = c.metadata();
            double acc = Double.parseDouble(meta.get("test_accuracy"));
            assertTrue(acc >= 0 && acc <= 1, "accuracy " + acc);
            assertEquals("2", meta.get("epochs"));
            assertTrue(meta.get("command").startsWith("train-classifier --data fashion-mnist --limit 192"),
                    meta.get("command"));
            assertTrue(meta.get("data").startsWith("first 192 of fashion-mnist"), meta.get("data"));
            assertTrue(meta.get("test_data").startsWith("first 100 of fashion-mnist"), meta.get("test_data"));
            assertEquals(2, meta.get("epoch_test_accuracy").split(",").length, meta.get("epoch_test_accuracy"));
            assertEquals(16, c.featureDim());
            assertEquals(10, c.numClasses());
            assertTrue(c.describe().contains("test accuracy"), c.describe());
        }
    }

    @Test
    void badInputIsOneLineAndExitCodeOne(@TempDir Path dir) {
        Path out = dir.resolve("x.safetensors");
        assertOneLineError(concat(TINY, "--width", "16", "--out", out.toString(), "--augment", "sideways"),
                "--augment must be none, flip, flip-shift or flip-shift:N");
        assertOneLineError(concat(TINY, "--out", out.toString(), "--width", "18"), "invalid classifier config");
        assertOneLineError(new String[] {"train-classifier", "--data", dir.resolve("nothing").toString(), "--out",
                out.toString(), "--device", "cpu"}, "no data at");
        assertOneLineError(new String[] {"train-classifier", "--data", "fashion-mnist", "--limit", "10", "--out",
                out.toString(), "--device", "cpu"}, "fewer than one batch");
        assertFalse(Files.exists(out), "a failed run writes nothing");
    }

    private static void assertOneLineError(String[] args, String expected) {
        PrintStream saved = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        int code;
        try {
            code = Main.run(args);
        } finally {
            System.setErr(saved);
        }
        String text = err.toString(StandardCharsets.UTF_8).strip();
        assertEquals(1, code, text);
        assertTrue(text.startsWith("error: ") && text.contains(expected) && !text.contains("\n"),
                "expected one line containing '" + expected + "', got: " + text);
    }

    private static String[] concat(String[] a, String... b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
