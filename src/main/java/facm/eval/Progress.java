package facm.eval;

import java.io.PrintStream;
import java.util.Locale;

/**
 * A progress line for a long loop: "WHAT: done/total (rate/s, ETA)". On a terminal it is rewritten in place; in a
 * log (piped output) a line is printed at most every {@value #LOG_INTERVAL_SECONDS} seconds and at the end.
 */
public final class Progress {
    private static final double LOG_INTERVAL_SECONDS = 5;

    private final PrintStream out;
    private final String what;
    private final String unit;
    private final long total;
    private final boolean terminal;
    private final long start = System.nanoTime();
    private long lastPrint = Long.MIN_VALUE;

    public Progress(PrintStream out, String what, String unit, long total) {
        this.out = out;
        this.what = what;
        this.unit = unit;
        this.total = total;
        this.terminal = System.console() != null && System.console().isTerminal() && out == System.out;
    }

    public void update(long done) {
        long now = System.nanoTime();
        boolean end = done >= total;
        if (!terminal && !end && lastPrint != Long.MIN_VALUE && (now - lastPrint) / 1e9 < LOG_INTERVAL_SECONDS) {
            return;
        }
        lastPrint = now;
        double secs = Math.max(1e-9, (now - start) / 1e9);
        double rate = done / secs;
        String line = String.format(Locale.ROOT, "%s: %d/%d %s  (%.1f %s/s%s)", what, done, total, unit, rate, unit,
                end ? String.format(Locale.ROOT, ", %.1f s", secs)
                        : ", ETA " + eta(rate > 0 ? (total - done) / rate : Double.NaN));
        if (terminal) {
            out.print("\r" + line + "\033[K");
            if (end) {
                out.println();
            }
        } else {
            out.println(line);
        }
        out.flush();
    }

    static String eta(double seconds) {
        if (!Double.isFinite(seconds)) {
            return "?";
        }
        long s = Math.round(seconds);
        if (s >= 3600) {
            return String.format(Locale.ROOT, "%dh%02dm", s / 3600, (s % 3600) / 60);
        }
        return s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
    }
}
