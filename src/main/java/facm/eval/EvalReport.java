package facm.eval;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import facm.io.LineChart;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.List;
import java.util.Locale;

/**
 * The outputs of an evaluation: {@value #JSON} (every setting and number), {@value #CHART} (FID against NFE) and the
 * table printed on stdout.
 */
public final class EvalReport {
    public static final String JSON = "eval.json";
    public static final String CHART = "fid_vs_nfe.png";

    private EvalReport() {
    }

    /** What was evaluated and how; strings as they are printed (null where not applicable). */
    public record Settings(String checkpoint, String weights, String model, String data, String sampler, int n,
                           int batch, long seed, String classes, String device, String precision, String classifier,
                           String classifierFile, int featureDim) {
    }

    public static JsonObject json(Settings s, FidEvaluation.Reference ref, List<FidEvaluation.NfeResult> results) {
        JsonObject o = new JsonObject();
        o.addProperty("checkpoint", s.checkpoint());
        o.addProperty("weights", s.weights());
        o.addProperty("model", s.model());
        o.addProperty("data", s.data());
        o.addProperty("reference_images", ref.count());
        o.addProperty("sampler", s.sampler());
        o.addProperty("n", s.n());
        o.addProperty("batch", s.batch());
        o.addProperty("seed", s.seed());
        o.addProperty("classes", s.classes());
        o.addProperty("device", s.device());
        o.addProperty("precision", s.precision());
        JsonObject c = new JsonObject();
        c.addProperty("describe", s.classifier());
        c.addProperty("file", s.classifierFile());
        c.addProperty("feature_dim", s.featureDim());
        addNullable(c, "accuracy_on_reference", ref.classifierAccuracy());
        o.add("classifier", c);
        JsonArray rows = new JsonArray();
        for (FidEvaluation.NfeResult r : results) {
            JsonObject row = new JsonObject();
            row.addProperty("nfe", r.nfe());
            row.addProperty("fid", r.fidValue());
            row.addProperty("fid_mean_term", r.fid().meanTerm());
            row.addProperty("fid_trace_term", r.fid().traceTerm());
            addNullable(row, "class_consistency", r.classConsistency());
            row.addProperty("sampling_seconds", r.generateSeconds());
            row.addProperty("total_seconds", r.totalSeconds());
            row.addProperty("samples_per_s", r.samplesPerSecond());
            row.addProperty("ms_per_nfe_per_image", r.msPerEvaluationPerImage());
            rows.add(row);
        }
        o.add("results", rows);
        o.addProperty("created", Instant.now().toString());
        return o;
    }

    private static void addNullable(JsonObject o, String key, Double v) {
        if (v == null) {
            o.add(key, JsonNull.INSTANCE);
        } else {
            o.addProperty(key, v);
        }
    }

    /** Writes {@value #JSON} and {@value #CHART} into {@code dir} (created if missing); returns the two paths. */
    public static List<Path> write(Path dir, Settings s, FidEvaluation.Reference ref,
                                   List<FidEvaluation.NfeResult> results) throws IOException {
        Files.createDirectories(dir);
        Path json = dir.resolve(JSON);
        Path tmp = dir.resolve("." + JSON + ".tmp");
        String text = new GsonBuilder().setPrettyPrinting().serializeNulls().create().toJson(json(s, ref, results));
        Files.writeString(tmp, text + "\n", StandardCharsets.UTF_8);
        Files.move(tmp, json, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        Path png = dir.resolve(CHART);
        chart(s, results).write(png);
        return List.of(json, png);
    }

    static LineChart chart(Settings s, List<FidEvaluation.NfeResult> results) {
        double[] x = results.stream().mapToDouble(FidEvaluation.NfeResult::nfe).toArray();
        double[] y = results.stream().mapToDouble(FidEvaluation.NfeResult::fidValue).toArray();
        boolean spread = results.stream().mapToInt(FidEvaluation.NfeResult::nfe).max().orElse(1)
                >= 4 * results.stream().mapToInt(FidEvaluation.NfeResult::nfe).min().orElse(1);
        String title = String.format(Locale.ROOT, "FID vs NFE  (%s sampler, n = %d)", s.sampler(), s.n());
        return new LineChart(title, "NFE (network evaluations per sample)", "FID")
                .logX(spread).xTicksAtData(true).yFromZero(true).valueLabels(true).add("FID", x, y);
    }

    /** The table printed at the end: one row per NFE. */
    public static String table(List<FidEvaluation.NfeResult> results) {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "%5s %11s %12s %12s %13s %10s%n", "NFE", "FID", "class cons.",
                "sampling s", "ms/NFE/image", "total s"));
        for (FidEvaluation.NfeResult r : results) {
            String cc = r.classConsistency() == null ? "-"
                    : String.format(Locale.ROOT, "%.1f %%", 100 * r.classConsistency());
            b.append(String.format(Locale.ROOT, "%5d %11.4f %12s %12.2f %13.4f %10.2f%n", r.nfe(), r.fidValue(), cc,
                    r.generateSeconds(), r.msPerEvaluationPerImage(), r.totalSeconds()));
        }
        return b.toString();
    }
}
