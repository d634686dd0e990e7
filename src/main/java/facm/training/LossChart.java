package facm.training;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import facm.io.LineChart;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The loss curves of a run, drawn from its {@code metrics.jsonl} ({@link MetricsLog}): the total {@code loss} and,
 * where the objective logs them, {@code loss_fm} and {@code loss_cm}, against the step. The y axis is logarithmic
 * when every value is positive (losses fall over orders of magnitude), else linear. Intervals whose value is null
 * (every step skipped) are left out.
 */
final class LossChart {
    static final String FILE = "loss.png";
    static final List<String> KEYS = List.of("loss", "loss_fm", "loss_cm");

    private LossChart() {
    }

    /** The chart of {@code metrics}, or null when it holds no loss value yet. Unreadable lines are skipped. */
    static LineChart of(Path metrics, String title) throws IOException {
        List<List<double[]>> points = new ArrayList<>();
        for (int k = 0; k < KEYS.size(); k++) {
            points.add(new ArrayList<>());
        }
        for (String line : Files.readAllLines(metrics, StandardCharsets.UTF_8)) {
            if (line.isBlank()) {
                continue;
            }
            JsonObject o;
            try {
                o = JsonParser.parseString(line).getAsJsonObject();
            } catch (JsonParseException | IllegalStateException e) {
                continue; // a line cut short by a crash: the chart shows the rest
            }
            if (!o.has("step")) {
                continue;
            }
            double step = o.get("step").getAsDouble();
            for (int k = 0; k < KEYS.size(); k++) {
                JsonElement v = o.get(KEYS.get(k));
                if (v != null && v.isJsonPrimitive() && v.getAsJsonPrimitive().isNumber()) {
                    points.get(k).add(new double[] {step, v.getAsDouble()});
                }
            }
        }
        boolean allPositive = true;
        boolean any = false;
        for (List<double[]> p : points) {
            for (double[] xy : p) {
                any = true;
                allPositive &= xy[1] > 0;
            }
        }
        if (!any) {
            return null;
        }
        LineChart chart = new LineChart(title, "step", allPositive ? "loss (log scale)" : "loss").logY(allPositive);
        for (int k = 0; k < KEYS.size(); k++) {
            List<double[]> p = points.get(k);
            if (!p.isEmpty()) {
                chart.add(KEYS.get(k), p.stream().mapToDouble(xy -> xy[0]).toArray(),
                        p.stream().mapToDouble(xy -> xy[1]).toArray());
            }
        }
        return chart;
    }

    /** Draws {@code metrics} into {@code png}; returns false (writing nothing) when there is no loss value yet. */
    static boolean write(Path metrics, Path png, String title) throws IOException {
        LineChart chart = of(metrics, title);
        if (chart == null) {
            return false;
        }
        chart.write(png);
        return true;
    }
}
