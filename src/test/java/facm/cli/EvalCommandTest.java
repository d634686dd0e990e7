package facm.cli;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import facm.backend.cpu.CpuBackend;
import facm.data.Dataset;
import facm.data.Datasets;
import facm.eval.RandomProjectionFeatures;
import facm.model.ModelCheckpoint;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.Backend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.ZipFile;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code eval} on the CPU with the tiny reference checkpoint and a stand-in feature network (the classifier's
 * features are not needed to check the plumbing), and {@code sample --out FILE.npz}.
 */
class EvalCommandTest {

    private static EvalCommand parse(String... args) {
        EvalCommand cmd = new EvalCommand();
        new CommandLine(cmd).parseArgs(args);
        return cmd;
    }

    private static JsonObject evaluate(Path ckpt, Path out, String... extra) throws Exception {
        String[] base = {"--ckpt", ckpt.toString(), "--model", "tiny", "--n", "30", "--ref-n", "200",
                "--seed", "5", "--device", "cpu", "--out", out.toString()};
        String[] args = concat(base, extra);
        if (!java.util.Arrays.asList(extra).contains("--batch")) {
            args = concat(args, "--batch", "16");
        }
        EvalCommand cmd = parse(args);
        try (Backend be = new CpuBackend(2);
             ModelWeights w = ModelCheckpoint.load(ckpt, Presets.get("tiny"), be);
             Dataset d = Datasets.open(Datasets.BUNDLED);
             RandomProjectionFeatures fx = new RandomProjectionFeatures(be, 1, 32, 24, 10, 9)) {
            cmd.evaluate(be, w, d, fx, "stand-in");
        }
        return JsonParser.parseString(Files.readString(out.resolve("eval.json"), StandardCharsets.UTF_8))
                .getAsJsonObject();
    }

    @Test
    void evalWritesNumbersTableAndChart(@TempDir Path dir) throws Exception {
        Path ckpt = SampleAndConvertCommandTest.fixture(dir, "tiny_ema.pt");
        long t0 = System.nanoTime();
        JsonObject a = evaluate(ckpt, dir.resolve("a"), "--nfe", "1,2");
        double secs = (System.nanoTime() - t0) / 1e9;
        System.out.printf("eval of the tiny model on the CPU, n 30, NFE 1 and 2, 200 reference images: %.1f s%n", secs);
        assertEquals("consistency", a.get("sampler").getAsString());
        assertEquals(30, a.get("n").getAsInt());
        assertEquals(200, a.get("reference_images").getAsInt());
        assertTrue(a.get("device").getAsString().startsWith("cpu"));
        assertEquals(24, a.getAsJsonObject("classifier").get("feature_dim").getAsInt());
        JsonArray rows = a.getAsJsonArray("results");
        assertEquals(2, rows.size());
        for (int i = 0; i < 2; i++) {
            JsonObject r = rows.get(i).getAsJsonObject();
            assertEquals(i + 1, r.get("nfe").getAsInt());
            double fid = r.get("fid").getAsDouble();
            assertTrue(Double.isFinite(fid) && fid > 0, "FID " + fid);
            assertEquals(fid, r.get("fid_mean_term").getAsDouble() + r.get("fid_trace_term").getAsDouble(), 1e-9);
            double cc = r.get("class_consistency").getAsDouble();
            assertTrue(cc >= 0 && cc <= 1);
            assertTrue(r.get("ms_per_nfe_per_image").getAsDouble() > 0);
            assertTrue(r.get("total_seconds").getAsDouble() >= r.get("sampling_seconds").getAsDouble());
        }
        byte[] png = Files.readAllBytes(dir.resolve("a").resolve("fid_vs_nfe.png"));
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G'}, java.util.Arrays.copyOf(png, 4));

        // each sample's noise depends on its index only: another batch size gives the same samples, so the same FID
        JsonObject b = evaluate(ckpt, dir.resolve("b"), "--nfe", "1", "--batch", "30");
        assertEquals(fid(a, 0), fid(b, 0), 1e-6 * fid(a, 0), "batch size must not change the FID");

        JsonObject e = evaluate(ckpt, dir.resolve("e"), "--nfe", "2", "--sampler", "euler", "--classes", "random");
        assertEquals("euler", e.get("sampler").getAsString());
        assertEquals("random", e.get("classes").getAsString());
        assertTrue(fid(e, 0) > 0);
    }

    private static double fid(JsonObject report, int row) {
        return report.getAsJsonArray("results").get(row).getAsJsonObject().get("fid").getAsDouble();
    }

    @Test
    void evalWithTheBundledClassifierThroughTheCommandLine(@TempDir Path dir) throws Exception {
        Path ckpt = SampleAndConvertCommandTest.fixture(dir, "tiny_ema.pt");
        Path out = dir.resolve("cli");
        assertEquals(0, Main.run("eval", "--ckpt", ckpt.toString(), "--model", "tiny", "--n", "20", "--ref-n", "100",
                "--nfe", "1", "--batch", "20", "--device", "cpu", "--out", out.toString()));
        JsonObject r = JsonParser.parseString(Files.readString(out.resolve("eval.json"), StandardCharsets.UTF_8))
                .getAsJsonObject();
        assertEquals("bundled Fashion-MNIST classifier", r.getAsJsonObject("classifier").get("file").getAsString());
        assertTrue(r.getAsJsonObject("classifier").get("accuracy_on_reference").getAsDouble() >= 0);
        assertTrue(fid(r, 0) > 0);
        assertEquals(1, Main.run("eval", "--ckpt", ckpt.toString(), "--model", "tiny", "--device", "cpu", "--classifier",
                dir.resolve("missing.safetensors").toString(), "--out", out.toString()), "a missing classifier file");
    }

    @Test
    void badArgumentsAreOneLineErrors(@TempDir Path dir) throws Exception {
        Path ckpt = SampleAndConvertCommandTest.fixture(dir, "tiny_ema.pt");
        String[] common = {"eval", "--ckpt", ckpt.toString(), "--model", "tiny", "--device", "cpu", "--out",
                dir.resolve("out").toString()};
        assertEquals(1, Main.run(concat(common, "--nfe", "0")));
        assertEquals(1, Main.run(concat(common, "--sampler", "heun")));
        assertEquals(1, Main.run(concat(common, "--classes", "some")));
        assertEquals(1, Main.run(concat(common, "--n", "1")));
        assertEquals(1, Main.run(concat(common, "--precision", "bf16")));
        assertEquals(1, Main.run(concat(common, "--fm-branch")), "--fm-branch needs the euler sampler");
        assertFalse(Files.exists(dir.resolve("out").resolve("eval.json")));
    }

    @Test
    void sampleWritesNpzInTheFidToolLayout(@TempDir Path dir) throws Exception {
        Path ckpt = SampleAndConvertCommandTest.fixture(dir, "tiny_ema.pt");
        Path npz = dir.resolve("s.npz");
        Path st = dir.resolve("s.safetensors");
        String[] common = {"sample", "--ckpt", ckpt.toString(), "--model", "tiny", "--n", "3", "--seed", "2",
                "--device", "cpu"};
        assertEquals(0, Main.run(concat(common, "--out", npz.toString())));
        assertEquals(0, Main.run(concat(common, "--out", st.toString())));
        float[] samples;
        try (facm.checkpoint.SafetensorsReader r = facm.checkpoint.SafetensorsReader.open(st)) {
            samples = r.readFloats("samples");
        }
        try (ZipFile zip = new ZipFile(npz.toFile())) {
            var img = facm.io.NpzTestReader.read(zip, "arr_0");
            assertEquals("{'descr': '|u1', 'fortran_order': False, 'shape': (3, 32, 32, 1), }", img.header());
            for (int i = 0; i < samples.length; i++) {
                int expected = Math.round((Math.max(-1f, Math.min(1f, samples[i])) + 1f) * 0.5f * 255f);
                assertEquals(expected, img.data().get(i) & 0xFF, "pixel " + i + " (1 channel: NHWC = NCHW order)");
            }
            assertEquals(2, facm.io.NpzTestReader.read(zip, "labels").data().getLong(16));
            assertEquals(2, facm.io.NpzTestReader.read(zip, "arr_1").data().getLong(16));
        }
    }

    private static String[] concat(String[] a, String... b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
