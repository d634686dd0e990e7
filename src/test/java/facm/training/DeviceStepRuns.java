package facm.training;

import com.google.gson.JsonObject;
import facm.checkpoint.SafetensorsReader;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.TrainingOps;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Runs of the quadratic stand-in objective on one backend with the host-decided update and with the device-step
 * update ({@code --cuda-graph-step}), compared bit for bit: checkpoint tensors (weights, moments, EMAs), counters
 * and metrics lines. Shared by the CPU test and its gpu-tagged twin.
 */
final class DeviceStepRuns {
    private static final int BATCH = 4;
    private final PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());

    static TrainOptions options(Path out, int steps, int ckptEvery) {
        JsonObject o = new JsonObject();
        o.addProperty("steps", steps);
        o.addProperty("batch", BATCH);
        o.addProperty("lr", 1e-2);
        o.addProperty("weight_decay", 0.01);
        o.addProperty("grad_clip", 0.05);
        o.addProperty("ema", "power:0.05,classic:0.9");
        o.addProperty("seed", 5);
        o.addProperty("out", out.toString());
        o.addProperty("log_every", 2);
        o.addProperty("ckpt_every", ckptEvery);
        o.addProperty("sample_every", 0);
        return TrainOptions.resolve(o);
    }

    /** A run of {@code o} on {@code be}; NaN loss at {@code nanSteps}; resumes from the last checkpoint if asked. */
    Trainer.Result run(Backend be, TrainOptions o, boolean deviceStep, Set<Long> nanSteps, boolean resume)
            throws IOException {
        TrainingOps ops = be.training();
        try (ModelWeights w = TrainingTestModels.weights(be, 3);
             Trainer t = new Trainer(o, w, new QuadraticObjective(ops, o.seed(), nanSteps, s -> { }), ops,
                     Path.of(o.out()), quiet)) {
            if (resume) {
                t.resume(Trainer.lastCheckpoint(Path.of(o.out())));
            }
            if (deviceStep) {
                t.useDeviceStep(false);
            }
            return t.run(new FakeBatches(w.config(), BATCH, o.seed(), t.dataPosition()), false);
        }
    }

    /** Host path vs device path over {@code steps} steps (a NaN step and clipping included): identical bits. */
    void assertDeviceStepMatchesHostStep(Backend be, Path dir, int steps) throws IOException {
        Path host = dir.resolve("host"), device = dir.resolve("device");
        Trainer.Result a = run(be, options(host, steps, 0), false, Set.of(1L), false);
        Trainer.Result b = run(be, options(device, steps, 0), true, Set.of(1L), false);
        assertEquals(a, new Trainer.Result(b.step(), b.skippedSteps(), b.stopped(),
                Trainer.lastCheckpoint(host)));
        assertSameRun(host, device);
    }

    static void assertSameRun(Path a, Path b) throws IOException {
        assertSameLastCheckpoint(a, b);
        assertEquals(metricsWithoutClock(a), metricsWithoutClock(b));
    }

    /** Same tensors, counters and EMA list in the last checkpoints of two runs. */
    static void assertSameLastCheckpoint(Path a, Path b) throws IOException {
        try (SafetensorsReader ra = SafetensorsReader.open(Trainer.lastCheckpoint(a));
             SafetensorsReader rb = SafetensorsReader.open(Trainer.lastCheckpoint(b))) {
            assertEquals(ra.names(), rb.names());
            for (String n : ra.names()) {
                assertArrayEquals(ra.readFloats(n), rb.readFloats(n), n);
            }
            assertEquals(ra.metadata().get("counters"), rb.metadata().get("counters"));
            assertEquals(ra.metadata().get("emas"), rb.metadata().get("emas"));
        }
    }

    private static List<String> metricsWithoutClock(Path out) throws IOException {
        return Files.readAllLines(out.resolve("metrics.jsonl")).stream()
                .map(l -> {
                    JsonObject o = com.google.gson.JsonParser.parseString(l).getAsJsonObject();
                    o.remove("samples_per_s");
                    o.remove("peak_mem_gib");
                    return o.toString();
                }).toList();
    }
}
