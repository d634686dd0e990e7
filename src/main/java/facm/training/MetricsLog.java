package facm.training;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * Averages the per-step numbers over each logging interval and writes them: one JSON line per interval to
 * {@code metrics.jsonl} ({@code step} = steps completed, {@code loss} and {@code grad_norm} = means over the interval's
 * applied steps, {@code lr}, {@code samples_per_s}, {@code peak_mem_gib} = the most device memory in use during any
 * step of the interval, only where the backend tracks it (GPU), {@code skipped} = skipped steps so far, then the
 * objective's own metrics, averaged the same way), and a progress line on the console. The sums of an unfinished
 * interval are part of a checkpoint ({@link #pendingState}), so a resumed run writes the same lines as an
 * uninterrupted one; only {@code samples_per_s} and {@code peak_mem_gib} are measurements of this process (after a
 * resume the peak covers the interval's steps since the resume).
 */
public final class MetricsLog implements AutoCloseable {
    private final Path file;
    private final BufferedWriter out;
    private final PrintStream console;
    private final boolean terminal;
    private final int totalSteps;
    private final int batch;
    private final float lr;

    private int applied;
    private double lossSum;
    private double normSum;
    private final Map<String, Double> extraSums = new TreeMap<>();
    /** Bytes; -1 while no step of the interval reported a tracked peak. */
    private long peakBytes = -1;

    private long intervalStartNanos = System.nanoTime();
    private final long processStartNanos = System.nanoTime();
    private int stepsThisProcess;
    /** Steps since the interval's clock started (not restored on resume: the clock restarts with the process). */
    private int stepsOnClock;

    /**
     * Appends to {@code file}, after dropping any line past {@code resumedStep} (lines a crashed run logged after its
     * last checkpoint; the resumed run writes them again).
     */
    public MetricsLog(Path file, int resumedStep, int totalSteps, int batch, float lr, PrintStream console)
            throws IOException {
        this.file = file;
        this.console = console;
        this.terminal = System.console() != null && System.console().isTerminal() && console == System.out;
        this.totalSteps = totalSteps;
        this.batch = batch;
        this.lr = lr;
        dropLinesAfter(file, resumedStep);
        this.out = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND);
    }

    private static void dropLinesAfter(Path file, int step) throws IOException {
        if (!Files.exists(file)) {
            return;
        }
        List<String> keep = new ArrayList<>();
        boolean dropped = false;
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (line.isBlank()) {
                continue;
            }
            JsonObject o = TrainOptions.parseObject(line, file + " line");
            if (o.has("step") && o.get("step").getAsLong() > step) {
                dropped = true;
            } else {
                keep.add(line);
            }
        }
        if (dropped) {
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
            Files.write(tmp, keep, StandardCharsets.UTF_8);
            Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        }
    }

    /** Records one step; {@code applied} is false for a skipped step, whose numbers are not averaged. */
    public void record(float loss, double gradNorm, boolean wasApplied, Map<String, Double> objectiveMetrics) {
        stepsThisProcess++;
        stepsOnClock++;
        if (wasApplied) {
            applied++;
            lossSum += loss;
            normSum += gradNorm;
            for (Map.Entry<String, Double> e : objectiveMetrics.entrySet()) {
                extraSums.merge(e.getKey(), e.getValue(), Double::sum);
            }
        }
    }

    /**
     * Records the peak device memory of one step (bytes, from {@code Backend.peakMemoryBytes()}); -1 = not tracked,
     * and then the line has no {@code peak_mem_gib}. The interval reports the largest.
     */
    public void recordPeakMemory(long bytes) {
        peakBytes = Math.max(peakBytes, bytes);
    }

    /** GiB to 4 decimals (0.1 MiB: small models on a GPU still show a non-zero peak). */
    static double gib(long bytes) {
        return Math.round(bytes / (double) (1L << 30) * 10_000) / 10_000.0;
    }

    /** Writes the interval that ends with {@code completedSteps} and starts a new one. */
    public void flush(int completedSteps, long skippedSoFar) {
        double secs = Math.max(1e-9, (System.nanoTime() - intervalStartNanos) / 1e9);
        JsonObject o = new JsonObject();
        o.addProperty("step", completedSteps);
        addMean(o, "loss", lossSum);
        addMean(o, "grad_norm", normSum);
        o.addProperty("lr", lr);
        o.addProperty("samples_per_s", round((double) stepsOnClock * batch / secs));
        if (peakBytes >= 0) {
            o.addProperty("peak_mem_gib", gib(peakBytes));
        }
        o.addProperty("skipped", skippedSoFar);
        extraSums.forEach((k, v) -> addMean(o, k, v));
        try {
            out.write(o.toString());
            out.newLine();
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot append to " + file + ": " + e.getMessage(), e);
        }
        progress(completedSteps, skippedSoFar, secs);
        applied = 0;
        stepsOnClock = 0;
        lossSum = 0;
        normSum = 0;
        extraSums.clear();
        peakBytes = -1;
        intervalStartNanos = System.nanoTime();
    }

    private void progress(int step, long skipped, double intervalSecs) {
        double rate = stepsOnClock / intervalSecs;
        double overall = stepsThisProcess / Math.max(1e-9, (System.nanoTime() - processStartNanos) / 1e9);
        String line = String.format(Locale.ROOT, "step %d/%d  loss %s  grad %s  %.1f samples/s%s  ETA %s%s", step,
                totalSteps, applied == 0 ? "-" : String.format(Locale.ROOT, "%.4f", lossSum / applied),
                applied == 0 ? "-" : String.format(Locale.ROOT, "%.3f", normSum / applied), rate * batch,
                peakBytes < 0 ? "" : String.format(Locale.ROOT, "  peak %.2f GiB", peakBytes / (double) (1L << 30)),
                eta((totalSteps - step) / Math.max(overall, 1e-9)), skipped == 0 ? "" : "  skipped " + skipped);
        if (terminal) {
            console.print("\r" + line + "\033[K");
            if (step == totalSteps) {
                console.println();
            }
        } else {
            console.println(line);
        }
        console.flush();
    }

    /** Ends a live progress line before other output (a skip warning, a checkpoint note). */
    public void breakLine() {
        if (terminal) {
            console.println();
        }
    }

    static String eta(double seconds) {
        long s = Math.round(seconds);
        if (s >= 3600) {
            return String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60);
        }
        return s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
    }

    private void addMean(JsonObject o, String key, double sum) {
        if (applied == 0) {
            o.add(key, com.google.gson.JsonNull.INSTANCE);
        } else {
            o.addProperty(key, sum / applied);
        }
    }

    private static double round(double v) {
        return Math.round(v * 10) / 10.0;
    }

    /** The sums of the unfinished interval, for a checkpoint. */
    public JsonObject pendingState() {
        JsonObject o = new JsonObject();
        o.addProperty("applied", applied);
        o.addProperty("loss_sum", lossSum);
        o.addProperty("norm_sum", normSum);
        JsonObject extra = new JsonObject();
        extraSums.forEach(extra::addProperty);
        o.add("extra_sums", extra);
        return o;
    }

    /** Continues an interval a checkpoint interrupted. */
    public void restorePending(JsonObject o) {
        if (o == null || !o.has("applied")) {
            return;
        }
        applied = o.get("applied").getAsInt();
        lossSum = o.get("loss_sum").getAsDouble();
        normSum = o.get("norm_sum").getAsDouble();
        extraSums.clear();
        if (o.has("extra_sums")) {
            for (Map.Entry<String, JsonElement> e : o.getAsJsonObject("extra_sums").entrySet()) {
                extraSums.put(e.getKey(), e.getValue().getAsDouble());
            }
        }
    }

    @Override
    public void close() throws IOException {
        out.close();
    }
}
