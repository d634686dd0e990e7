package facm.cli;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import facm.checkpoint.SafetensorsReader;
import facm.training.TrainOptions;
import facm.training.Trainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code train} end to end on the CPU: tiny model, bundled Fashion-MNIST, the real stage-1 objective. */
class TrainCommandTest {

    /** Runs {@code train} as Main would once it is registered: errors become one line on stderr and exit code 1. */
    static int train(String... args) {
        CommandLine cl = new CommandLine(new TrainCommand());
        cl.setExecutionExceptionHandler((ex, line, parsed) -> {
            System.err.println("error: " + Main.oneLine(ex));
            return 1;
        });
        return cl.execute(args);
    }

    private static String[] common(Path out, String... more) {
        List<String> a = new java.util.ArrayList<>(List.of("--objective", "fm", "--model", "tiny", "--data", "fashion-mnist", "--batch",
                "4", "--device", "cpu", "--seed", "5", "--log-every", "1", "--ckpt-every", "2", "--sample-every",
                "3", "--sample-steps", "2", "--out", out.toString()));
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    @Test
    void trainsWritesEverythingResumesAndSamples(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("run");
        Path cfg = dir.resolve("cfg.json");
        Files.writeString(cfg, "{\"steps\": 3, \"lr\": 2e-4, \"weight-decay\": 0.01, \"ema\": \"power:0.2\"}");
        assertEquals(0, train(common(out, "--config", cfg.toString(), "--lr", "3e-4")));

        TrainOptions written = TrainOptions.fromJson(Files.readString(out.resolve("config.json")));
        assertEquals(3, written.steps());
        assertEquals(3e-4f, written.lr(), "flags override the config file");
        assertEquals(0.01f, written.weightDecay());
        assertEquals("power:0.2", written.ema());
        List<String> lines = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertEquals(3, lines.size());
        JsonObject last = JsonParser.parseString(lines.get(2)).getAsJsonObject();
        assertEquals(3, last.get("step").getAsInt());
        assertTrue(last.get("loss").getAsDouble() > 0 && last.has("grad_norm") && last.has("samples_per_s"));
        assertTrue(Files.exists(Trainer.stepCheckpoint(out, 2)));
        assertTrue(Files.exists(Trainer.stepCheckpoint(out, 3)));
        assertTrue(Files.exists(out.resolve("samples").resolve("step-0000003.png")));

        assertEquals(1, train(common(out, "--steps", "5")), "an existing run needs --resume");
        assertEquals(1, train(common(out, "--resume", "--steps", "5", "--lr", "1e-3")), "lr cannot change");
        assertEquals(0, train("--resume", "--out", out.toString(), "--steps", "4"));
        assertEquals(4, Files.readAllLines(out.resolve("metrics.jsonl")).size());
        try (SafetensorsReader r = SafetensorsReader.open(Trainer.lastCheckpoint(out))) {
            assertTrue(r.metadata().get("counters").contains("\"step\":4"), r.metadata().get("counters"));
            assertArrayEquals(new int[] {1, 256, 64}, r.shape("pos_embed"));
        }

        Path png = dir.resolve("ema.png");
        assertEquals(0, Main.run("sample", "--ckpt", Trainer.lastCheckpoint(out).toString(), "--sampler", "euler",
                "--steps", "2", "--n", "2", "--device", "cpu", "--out", png.toString()),
                "sample reads a training checkpoint");
        assertTrue(Files.size(png) > 0);
    }

    /** --checkpoint-blocks trades memory for recompute only: the logged losses and gradient norms are the same bits. */
    @Test
    void checkpointBlocksLeavesTheLossesUnchanged(@TempDir Path dir) throws Exception {
        Path plain = dir.resolve("plain");
        Path ckpt = dir.resolve("ckpt");
        assertEquals(0, train(common(plain, "--steps", "2")));
        assertEquals(0, train(common(ckpt, "--steps", "2", "--checkpoint-blocks")));
        List<String> a = Files.readAllLines(plain.resolve("metrics.jsonl"));
        List<String> b = Files.readAllLines(ckpt.resolve("metrics.jsonl"));
        assertEquals(2, a.size());
        for (int i = 0; i < a.size(); i++) {
            JsonObject x = JsonParser.parseString(a.get(i)).getAsJsonObject();
            JsonObject y = JsonParser.parseString(b.get(i)).getAsJsonObject();
            assertEquals(x.get("loss").getAsDouble(), y.get("loss").getAsDouble(), 0.0, "step " + (i + 1));
            assertEquals(x.get("grad_norm").getAsDouble(), y.get("grad_norm").getAsDouble(), 0.0, "step " + (i + 1));
        }
    }

    @Test
    void defaultJobIsTheEmbeddedConfig(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("job");
        assertEquals(0, train("--config", "default", "--steps", "2", "--log-every", "1", "--sample-every", "2",
                "--device", "cpu", "--out", out.toString()));
        TrainOptions written = TrainOptions.fromJson(Files.readString(out.resolve("config.json")));
        assertEquals("facm", written.objective());
        assertEquals("tiny4", written.model());
        assertEquals(1e-3f, written.lr());
        assertEquals(32, written.batch());
        assertEquals(null, written.stage2().teacher(), "the default job trains from scratch");
        assertTrue(Files.exists(out.resolve("samples").resolve("step-0000002-nfe1.png")));
        assertTrue(Files.exists(out.resolve("samples").resolve("step-0000002-nfe2.png")));
    }

    @Test
    void distillsFromATeacherWithEachStageTwoObjective(@TempDir Path dir) throws Exception {
        Path teacherRun = dir.resolve("teacher");
        assertEquals(0, train(common(teacherRun, "--steps", "2")));
        String teacher = Trainer.lastCheckpoint(teacherRun).toString();
        String[][] runs = {{"facm"}, {"scm"}, {"meanflow", "--aux-time"}};
        for (String[] run : runs) {
            Path out = dir.resolve(run[0]);
            List<String> args = new java.util.ArrayList<>(List.of(common(out, "--steps", "3", "--teacher", teacher)));
            args.set(args.indexOf("fm"), run[0]); // common() names the objective
            args.addAll(List.of(run).subList(1, run.length));
            assertEquals(0, train(args.toArray(String[]::new)), run[0]);
            JsonObject last = JsonParser.parseString(Files.readAllLines(out.resolve("metrics.jsonl")).get(2))
                    .getAsJsonObject();
            assertTrue(last.get("loss_cm").getAsDouble() > 0 && last.has("loss_fm"), last.toString());
            assertTrue(Files.exists(out.resolve("samples").resolve("step-0000003-nfe1.png")), run[0]);
            assertTrue(Files.exists(out.resolve("samples").resolve("step-0000003-nfe2.png")), run[0]);
        }
        List<String> missing = new java.util.ArrayList<>(List.of(common(dir.resolve("x"), "--teacher",
                dir.resolve("missing.safetensors").toString())));
        missing.set(missing.indexOf("fm"), "facm");
        PrintStream err = System.err;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        System.setErr(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            assertEquals(1, train(missing.toArray(String[]::new)), "a missing teacher");
        } finally {
            System.setErr(err);
        }
        assertTrue(bytes.toString(StandardCharsets.UTF_8).strip().matches("error: file not found: .*missing"
                + "\\.safetensors"), bytes.toString(StandardCharsets.UTF_8));
    }

    @Test
    void badInputIsOneLine(@TempDir Path dir) {
        PrintStream err = System.err;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        System.setErr(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            assertEquals(1, train("--out", dir.resolve("a").toString(), "--data", dir.resolve("nope").toString(),
                    "--device", "cpu"));
            assertEquals(1, train("--out", dir.resolve("b").toString(), "--ema", "power:x", "--device", "cpu"));
            assertEquals(1, train("--out", dir.resolve("d").toString(), "--objective", "meanflow", "--device", "cpu"),
                    "meanflow without the auxiliary time embedder");
            assertEquals(1, train("--resume", "--out", dir.resolve("c").toString()), "nothing to resume");
        } finally {
            System.setErr(err);
        }
        String[] lines = bytes.toString(StandardCharsets.UTF_8).strip().split("\n");
        assertEquals(4, lines.length, bytes.toString(StandardCharsets.UTF_8));
        for (String l : lines) {
            assertTrue(l.startsWith("error: "), l);
        }
    }
}
