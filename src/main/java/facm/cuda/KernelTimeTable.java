package facm.cuda;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The resolved timings of a {@link KernelProfile}: GPU milliseconds per launch, aggregated per label (kernel name or
 * GEMM shape), plus the wall time from the first to the last recorded event of each device, so that the time the GPU
 * spent between kernels (launch gaps, host waits, copies and memsets, which are not profiled) shows as the difference.
 * Separate from the profile so the aggregation and the table can be tested with injected timings, without a GPU.
 */
public final class KernelTimeTable {

    /** One label's aggregate: how many launches and their summed GPU time. */
    public record Row(String label, long calls, double totalMs) {
        public double meanMicros() {
            return calls == 0 ? 0 : totalMs * 1000 / calls;
        }
    }

    private static final class Sum {
        long calls;
        double ms;
    }

    private final Map<String, Sum> byLabel = new HashMap<>();
    private final Map<String, Double> wallMsByDevice = new LinkedHashMap<>();
    private long launches;
    private double sumMs;
    private long skippedInCapture;
    private long dropped;
    private long unfinished;

    /** Adds one launch of {@code label} that took {@code ms} of GPU time. */
    public void add(String label, double ms) {
        if (label == null || !Double.isFinite(ms) || ms < 0) {
            throw new IllegalArgumentException("kernel time table: bad entry label=" + label + " ms=" + ms);
        }
        Sum s = byLabel.computeIfAbsent(label, l -> new Sum());
        s.calls++;
        s.ms += ms;
        launches++;
        sumMs += ms;
    }

    /** The time from the first recorded event to the last on {@code device} (e.g. "cuda:0 NVIDIA H200"). */
    public void wall(String device, double ms) {
        wallMsByDevice.put(device, ms);
    }

    /**
     * Launches that have no timing: {@code skippedInCapture} were queued inside a CUDA graph capture (events there
     * would become graph nodes, not timestamps), {@code dropped} came after the record limit, {@code unfinished}
     * recorded a start but no end (the launch failed).
     */
    public void notTimed(long skippedInCapture, long dropped, long unfinished) {
        this.skippedInCapture = skippedInCapture;
        this.dropped = dropped;
        this.unfinished = unfinished;
    }

    /** Launches queued inside a CUDA graph capture since the reset: not timed. */
    public long skippedInCapture() {
        return skippedInCapture;
    }

    public long launches() {
        return launches;
    }

    public double sumMs() {
        return sumMs;
    }

    /** The wall time of the first device, or NaN when none was recorded. */
    public double wallMs() {
        return wallMsByDevice.isEmpty() ? Double.NaN : wallMsByDevice.values().iterator().next();
    }

    /** Every label's aggregate, largest total first (ties by label, so the order is stable). */
    public List<Row> rows() {
        List<Row> rows = new ArrayList<>(byLabel.size());
        byLabel.forEach((label, s) -> rows.add(new Row(label, s.calls, s.ms)));
        rows.sort(Comparator.comparingDouble(Row::totalMs).reversed().thenComparing(Row::label));
        return rows;
    }

    /**
     * The table of the {@code top} largest labels, every time divided by {@code perRuns} (1 for totals; the number of
     * steps for per-step averages; the mean per call is per call either way): ms, % of the sum of all kernel times,
     * calls, mean µs, label; then one line for the rest, and the sum and wall-time lines above it.
     */
    public String format(int top, int perRuns) {
        if (top < 1 || perRuns < 1) {
            throw new IllegalArgumentException("kernel time table: top (" + top + ") and perRuns (" + perRuns
                    + ") must be >= 1");
        }
        StringBuilder out = new StringBuilder();
        String per = perRuns == 1 ? "totals" : "per run, averaged over " + perRuns + " runs";
        out.append(String.format(Locale.ROOT, "GPU time per kernel label (CUDA events around each launch), %s%n",
                per));
        out.append(String.format(Locale.ROOT, "  %d launches, %d labels; sum of kernel times %.3f ms%n",
                launches, byLabel.size(), sumMs / perRuns));
        wallMsByDevice.forEach((device, wall) -> out.append(String.format(Locale.ROOT,
                "  wall from first to last event on %s: %.3f ms (kernels %.1f %%, the rest %.3f ms: gaps, copies, "
                        + "host waits)%n", device, wall / perRuns, percent(sumMs, wall), (wall - sumMs) / perRuns)));
        if (skippedInCapture + dropped + unfinished > 0) {
            out.append(String.format(Locale.ROOT, "  not timed: %d launched inside a graph capture, %d past the "
                    + "record limit, %d without an end event%n", skippedInCapture, dropped, unfinished));
        }
        if (launches == 0) {
            out.append("  nothing was timed: no CUDA launch since the reset (the CPU backend, the profile off, or all"
                    + " the work inside CUDA graphs)\n");
            return out.toString();
        }
        out.append(String.format(Locale.ROOT, "  %10s %7s %10s %10s  %s%n", "ms", "% sum", "calls", "mean us",
                "label"));
        List<Row> rows = rows();
        int shown = Math.min(top, rows.size());
        for (int i = 0; i < shown; i++) {
            Row r = rows.get(i);
            out.append(String.format(Locale.ROOT, "  %10.3f %6.1f%% %10s %10.1f  %s%n", r.totalMs() / perRuns,
                    percent(r.totalMs(), sumMs), calls(r.calls(), perRuns), r.meanMicros(), r.label()));
        }
        if (rows.size() > shown) {
            double restMs = 0;
            long restCalls = 0;
            for (Row r : rows.subList(shown, rows.size())) {
                restMs += r.totalMs();
                restCalls += r.calls();
            }
            out.append(String.format(Locale.ROOT, "  %10.3f %6.1f%% %10s %10s  (%d more labels)%n", restMs / perRuns,
                    percent(restMs, sumMs), calls(restCalls, perRuns), "", rows.size() - shown));
        }
        return out.toString();
    }

    private static double percent(double part, double whole) {
        return whole > 0 ? 100 * part / whole : 0;
    }

    /** Calls per run: an integer when the runs divide it evenly, else one decimal. */
    private static String calls(long calls, int perRuns) {
        return calls % perRuns == 0 ? Long.toString(calls / perRuns)
                : String.format(Locale.ROOT, "%.1f", (double) calls / perRuns);
    }
}
