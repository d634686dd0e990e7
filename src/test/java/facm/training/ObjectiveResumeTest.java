package facm.training;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import facm.backend.cpu.CpuBackend;
import facm.checkpoint.SafetensorsReader;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.objectives.ConsistencyObjective;
import facm.objectives.FlowMatchingObjective;
import facm.tensor.Backend;
import facm.tensor.GemmPrecision;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real objectives on the tiny preset (stage-1 fm; stage-2 facm distilling a fixed teacher): a stopped and
 * resumed run equals the uninterrupted one bit for bit.
 */
class ObjectiveResumeTest {
    private static final int BATCH = 2;
    private static final int STEPS = 4;
    private final Backend be = new CpuBackend(2);
    private final PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());

    private Trainer.Result train(String objective, Path out, long stopAt, boolean resume) throws IOException {
        JsonObject o = new JsonObject();
        o.addProperty("objective", objective);
        o.addProperty("steps", STEPS);
        o.addProperty("batch", BATCH);
        o.addProperty("lr", 1e-3);
        o.addProperty("seed", 21);
        o.addProperty("out", out.toString());
        o.addProperty("log_every", 1);
        o.addProperty("ckpt_every", 0);
        o.addProperty("sample_every", 0);
        TrainOptions opts = TrainOptions.resolve(o);
        ModelConfig c = Presets.get("tiny");
        try (ModelWeights w = ModelInitializer.initialize(c, be, opts.seed());
             ModelWeights teacher = ModelWeights.philox(c, be, 77);
             Objective fm = objective.equals("fm") ? new FlowMatchingObjective(opts.seed(), GemmPrecision.FP32,
                     FlowMatchingObjective.Options.defaults())
                     : new ConsistencyObjective(opts.seed(), GemmPrecision.FP32, ConsistencyObjective.Options.defaults(
                             ConsistencyObjective.Kind.FACM), teacher)) {
            Trainer[] holder = new Trainer[1];
            Objective stopping = new Objective() {
                @Override
                public String name() {
                    return fm.name();
                }

                @Override
                public float lossAndGradients(ModelWeights weights, facm.autograd.Gradients grads,
                                              facm.data.Batch batch, long step) {
                    if (step == stopAt) {
                        holder[0].requestStop();
                    }
                    return fm.lossAndGradients(weights, grads, batch, step);
                }

                @Override
                public java.util.Map<String, Double> lastMetrics() {
                    return fm.lastMetrics();
                }
            };
            try (Trainer t = new Trainer(opts, w, stopping, be.training(), out, quiet)) {
                holder[0] = t;
                if (resume) {
                    t.resume(Trainer.lastCheckpoint(out));
                }
                return t.run(new FakeBatches(c, BATCH, opts.seed(), t.dataPosition()), false);
            }
        }
    }

    private static List<String> metrics(Path out) throws IOException {
        List<String> lines = new ArrayList<>();
        for (String l : Files.readAllLines(out.resolve("metrics.jsonl"))) {
            JsonObject o = JsonParser.parseString(l).getAsJsonObject();
            o.remove("samples_per_s");
            lines.add(o.toString());
        }
        return lines;
    }

    @ParameterizedTest
    @ValueSource(strings = {"fm", "facm"})
    void resumedRunIsBitExact(String objective, @TempDir Path dir) throws IOException {
        Path full = dir.resolve("full");
        train(objective, full, -1, false);
        Path parts = dir.resolve("parts");
        assertEquals(2, train(objective, parts, 1, false).step());
        assertEquals(STEPS, train(objective, parts, -1, true).step());
        List<String> a = metrics(full);
        assertEquals(STEPS, a.size());
        assertEquals(a, metrics(parts));
        JsonObject first = JsonParser.parseString(a.get(0)).getAsJsonObject();
        assertTrue(Double.isFinite(first.get("loss").getAsDouble()) && first.get("loss").getAsDouble() > 0, a.get(0));
        try (SafetensorsReader ra = SafetensorsReader.open(Trainer.lastCheckpoint(full));
             SafetensorsReader rb = SafetensorsReader.open(Trainer.lastCheckpoint(parts))) {
            for (String n : ra.names()) {
                assertArrayEquals(ra.readFloats(n), rb.readFloats(n), n);
            }
        }
    }
}
