package facm.training;

import com.google.gson.JsonObject;
import facm.backend.cpu.CpuBackend;
import facm.io.LineChart;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** loss.png: the curves read from metrics.jsonl, and the trainer redrawing it with each checkpoint. */
class LossChartTest {

    @Test
    void curvesComeFromTheMetricsLines(@TempDir Path dir) throws Exception {
        Path metrics = dir.resolve("metrics.jsonl");
        Files.write(metrics, List.of(
                "{\"step\":10,\"loss\":2.0,\"grad_norm\":1.0,\"loss_fm\":1.5,\"loss_cm\":0.5}",
                "{\"step\":20,\"loss\":null,\"grad_norm\":null,\"skipped\":10}",
                "",
                "{\"step\":30,\"loss\":1.0,\"loss_fm\":0.7,\"loss_cm\":0.3}",
                "{\"step\":40,\"loss\":0.9,\"lo"), StandardCharsets.UTF_8);
        LineChart c = LossChart.of(metrics, "t");
        List<LineChart.Series> s = c.series();
        assertEquals(List.of("loss", "loss_fm", "loss_cm"), s.stream().map(LineChart.Series::name).toList());
        assertArrayEquals(new double[] {10, 30}, s.get(0).x(), "the null interval and the cut line are left out");
        assertArrayEquals(new double[] {2.0, 1.0}, s.get(0).y());
        assertArrayEquals(new double[] {0.5, 0.3}, s.get(2).y());
        Path png = dir.resolve("loss.png");
        assertTrue(LossChart.write(metrics, png, "t"));
        assertTrue(Files.size(png) > 1000);

        Files.write(metrics, List.of("{\"step\":10,\"loss\":-0.5}", "{\"step\":20,\"loss\":-0.7}"));
        assertEquals(1, LossChart.of(metrics, "t").series().size(), "no fm/cm terms logged: one curve");
        assertTrue(LossChart.write(metrics, png, "t"), "non-positive losses: a linear axis");

        Files.write(metrics, List.of("{\"step\":10,\"loss\":null}"));
        assertNull(LossChart.of(metrics, "t"));
        Files.delete(png);
        assertFalse(LossChart.write(metrics, png, "t"));
        assertFalse(Files.exists(png), "nothing to draw: no file");
    }

    @Test
    void trainerRedrawsTheChartWithEveryCheckpoint(@TempDir Path dir) throws Exception {
        JsonObject o = new JsonObject();
        o.addProperty("objective", "fm");
        o.addProperty("steps", 6);
        o.addProperty("batch", 2);
        o.addProperty("lr", 1e-2);
        o.addProperty("ema", "power:0.2");
        o.addProperty("seed", 1);
        o.addProperty("out", dir.toString());
        o.addProperty("log_every", 2);
        o.addProperty("ckpt_every", 4);
        o.addProperty("sample_every", 0);
        TrainOptions options = TrainOptions.resolve(o);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream console = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        try (Backend be = new CpuBackend(2); ModelWeights w = TrainingTestModels.weights(be, 3)) {
            TrainingOps ops = HostTrainingOps.of(be);
            try (Trainer t = new Trainer(options, w, new QuadraticObjective(ops, 1), ops, dir, console)) {
                t.run(new FakeBatches(w.config(), 2, 1, 0), false);
            }
        }
        Path png = dir.resolve("loss.png");
        assertTrue(Files.exists(png), "loss.png next to metrics.jsonl; console:\n" + bytes);
        assertFalse(bytes.toString(StandardCharsets.UTF_8).contains("warning"), bytes.toString(StandardCharsets.UTF_8));
        assertEquals(3, LossChart.of(dir.resolve("metrics.jsonl"), "t").series().get(0).x().length,
                "steps 2, 4 and 6");
    }
}
