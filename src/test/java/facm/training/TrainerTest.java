package facm.training;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import facm.backend.cpu.CpuBackend;
import facm.checkpoint.SafetensorsReader;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The loop with a stand-in objective: skipping non-finite steps, checkpoints, and bit-exact resume. */
class TrainerTest {
    private static final int BATCH = 4;
    private final Backend be = new CpuBackend(2);
    private final TrainingOps ops = HostTrainingOps.of(be);
    private final ByteArrayOutputStream consoleBytes = new ByteArrayOutputStream();
    private final PrintStream console = new PrintStream(consoleBytes, true, StandardCharsets.UTF_8);

    private TrainOptions options(Path out, int steps, int ckptEvery, int sampleEvery) {
        return options("fm", out, steps, ckptEvery, sampleEvery);
    }

    private TrainOptions options(String objective, Path out, int steps, int ckptEvery, int sampleEvery) {
        JsonObject o = new JsonObject();
        o.addProperty("objective", objective);
        o.addProperty("steps", steps);
        o.addProperty("batch", BATCH);
        o.addProperty("lr", 1e-2);
        o.addProperty("weight_decay", 0.01);
        o.addProperty("grad_clip", 0.05);
        o.addProperty("ema", "power:0.05,power:0.2");
        o.addProperty("seed", 11);
        o.addProperty("out", out.toString());
        o.addProperty("log_every", 3);
        o.addProperty("ckpt_every", ckptEvery);
        o.addProperty("sample_every", sampleEvery);
        o.addProperty("sample_steps", 2);
        return TrainOptions.resolve(o);
    }

    private Trainer.Result train(TrainOptions o, Set<Long> nanSteps, long stopAtStep, boolean resume)
            throws IOException {
        Path out = Path.of(o.out());
        try (ModelWeights w = TrainingTestModels.weights(be, 3)) {
            Trainer[] holder = new Trainer[1];
            QuadraticObjective objective = new QuadraticObjective(ops, o.seed(), nanSteps, s -> {
                if (s == stopAtStep) {
                    holder[0].requestStop();
                }
            });
            try (Trainer t = new Trainer(o, w, objective, ops, out, console)) {
                holder[0] = t;
                if (resume) {
                    t.resume(Trainer.lastCheckpoint(out));
                }
                return t.run(new FakeBatches(w.config(), BATCH, o.seed(), t.dataPosition()), false);
            }
        }
    }

    /** metrics.jsonl without the clock-dependent field. */
    private static List<String> metrics(Path out) throws IOException {
        List<String> lines = new ArrayList<>();
        for (String l : Files.readAllLines(out.resolve("metrics.jsonl"))) {
            JsonObject o = JsonParser.parseString(l).getAsJsonObject();
            o.remove("samples_per_s");
            lines.add(o.toString());
        }
        return lines;
    }

    private static void assertSameTensors(Path a, Path b) throws IOException {
        try (SafetensorsReader ra = SafetensorsReader.open(a); SafetensorsReader rb = SafetensorsReader.open(b)) {
            assertEquals(ra.names(), rb.names());
            for (String n : ra.names()) {
                assertArrayEquals(ra.readFloats(n), rb.readFloats(n), n);
            }
            assertEquals(ra.metadata().get("counters"), rb.metadata().get("counters"));
            assertEquals(ra.metadata().get("emas"), rb.metadata().get("emas"));
        }
    }

    @Test
    void stoppedAndResumedRunRepeatsTheUninterruptedOneBitForBit(@TempDir Path dir) throws IOException {
        Path full = dir.resolve("full");
        Trainer.Result r = train(options(full, 10, 4, 0), Set.of(6L), -1, false);
        assertEquals(10, r.step());
        assertEquals(1, r.skippedSteps());
        assertFalse(r.stopped());

        Path parts = dir.resolve("parts");
        Trainer.Result first = train(options(parts, 10, 4, 0), Set.of(6L), 4, false);
        assertTrue(first.stopped());
        assertEquals(5, first.step(), "the stop request lets the current step finish");
        assertTrue(Files.exists(Trainer.stepCheckpoint(parts, 5)));
        Trainer.Result second = train(options(parts, 10, 4, 0), Set.of(6L), -1, true);
        assertEquals(10, second.step());

        assertEquals(metrics(full), metrics(parts), "same metrics lines");
        assertEquals(4, metrics(full).size(), "steps 3, 6, 9 and the last");
        assertSameTensors(Trainer.lastCheckpoint(full), Trainer.lastCheckpoint(parts));
        assertSameTensors(Trainer.stepCheckpoint(full, 8), Trainer.stepCheckpoint(parts, 8));
    }

    @Test
    void resumeAfterACrashDropsMetricsLinesPastTheCheckpoint(@TempDir Path dir) throws IOException {
        Path full = dir.resolve("full");
        train(options(full, 9, 0, 0), Set.of(), -1, false);
        Path crashed = dir.resolve("crashed");
        train(options(crashed, 9, 4, 0), Set.of(), -1, false);
        // Pretend the run died after logging step 9 but with its last checkpoint at step 8.
        TrainState.linkOrCopy(Trainer.stepCheckpoint(crashed, 8), Trainer.lastCheckpoint(crashed));
        train(options(crashed, 9, 4, 0), Set.of(), -1, true);
        assertEquals(metrics(full), metrics(crashed));
    }

    @Test
    void nonFiniteStepIsSkippedAndCounted(@TempDir Path dir) throws IOException {
        try (ModelWeights w = TrainingTestModels.weights(be, 3);
             Trainer t = new Trainer(options(dir, 2, 0, 0), w, new QuadraticObjective(ops, 1, Set.of(1L), s -> { }),
                     ops, dir, console)) {
            Trainer.Result r = t.run(new FakeBatches(w.config(), BATCH, 1, 0), false);
            assertEquals(2, r.step());
            assertEquals(1, r.skippedSteps());
            assertEquals(1, t.optimizer().step(), "the skipped step does not advance AdamW");
            assertEquals(1, t.emas().all().get(0).updates(), "nor the EMAs");
            assertEquals(8, t.dataPosition(), "but the data moves on");
        }
        assertTrue(consoleBytes.toString(StandardCharsets.UTF_8).contains("step 2 skipped: loss NaN"));
        List<String> lines = Files.readAllLines(dir.resolve("metrics.jsonl"));
        assertEquals(1, lines.size());
        assertTrue(lines.get(0).contains("\"skipped\":1"), lines.get(0));
    }

    @Test
    void skippedStepLeavesWeightsBitIdentical(@TempDir Path dir) throws IOException {
        try (ModelWeights w = TrainingTestModels.weights(be, 3)) {
            String key = "blocks.0.attn.qkv.weight";
            float[] before = be.download(w.get(key));
            TrainOptions o = options(dir, 1, 0, 0);
            try (Trainer t = new Trainer(o, w, new QuadraticObjective(ops, 1, Set.of(0L), s -> { }), ops, dir,
                    console)) {
                float[] emaBefore = be.download(t.emas().all().get(1).weights().get(key));
                t.run(new FakeBatches(w.config(), BATCH, 1, 0), false);
                assertArrayEquals(before, be.download(w.get(key)));
                assertArrayEquals(emaBefore, be.download(t.emas().all().get(1).weights().get(key)));
                for (var m : t.optimizer().firstMoments().values()) {
                    for (float x : be.download(m)) {
                        assertEquals(0f, x);
                    }
                }
            }
        }
    }

    @Test
    void sampleGridsAreWrittenForImageModels(@TempDir Path dir) throws IOException {
        train(options(dir, 4, 0, 2), Set.of(), -1, false);
        for (int step : new int[] {2, 4}) {
            Path png = dir.resolve("samples").resolve(String.format("step-%07d.png", step));
            assertTrue(Files.exists(png), png.toString());
            byte[] head = java.util.Arrays.copyOf(Files.readAllBytes(png), 4);
            assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G'}, head);
        }
        assertTrue(Files.exists(Trainer.lastCheckpoint(dir)));
        assertTrue(Files.exists(Trainer.stepCheckpoint(dir, 4)));
        assertTrue(consoleBytes.toString(StandardCharsets.UTF_8).contains("step-0000004.png (EMA power_0.2"),
                consoleBytes.toString(StandardCharsets.UTF_8));
    }

    @Test
    void consistencyRunsWriteGridsAtOneAndTwoSteps(@TempDir Path dir) throws IOException {
        train(options("facm", dir, 2, 0, 2), Set.of(), -1, false);
        Path samples = dir.resolve("samples");
        for (String name : new String[] {"step-0000002-nfe1.png", "step-0000002-nfe2.png"}) {
            byte[] head = java.util.Arrays.copyOf(Files.readAllBytes(samples.resolve(name)), 4);
            assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G'}, head, name);
        }
        assertFalse(Files.exists(samples.resolve("step-0000002.png")), "no Euler grid for a consistency run");
        String out = consoleBytes.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains(samples.resolve("step-0000002-nfe1.png") + " and "
                + samples.resolve("step-0000002-nfe2.png") + " (EMA power_0.2, consistency sampler at NFE 1 and 2"), out);
    }

    @Test
    void cpuMetricsLinesHaveNoPeakMemory(@TempDir Path dir) throws IOException {
        train(options(dir, 3, 0, 0), Set.of(), -1, false);
        for (String l : Files.readAllLines(dir.resolve("metrics.jsonl"))) {
            assertFalse(l.contains("peak_mem_gib"), l);
        }
    }
}
