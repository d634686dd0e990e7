package facm.io;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;

/**
 * One axis of a {@link LineChart}: the value range, linear or logarithmic, the ticks and their labels, and the map
 * from values to pixels. Linear ticks are 1, 2 or 5 times a power of ten and the range is widened to whole ticks;
 * logarithmic ticks are the powers of ten, or 1-2-5 times them when the range spans too few decades, or round linear
 * steps when it spans less than about one.
 */
final class ChartAxis {
    /** Roughly this many ticks on a linear axis. */
    private static final int TARGET_TICKS = 6;

    final boolean log;
    final double lo;
    final double hi;
    final double[] ticks;

    private ChartAxis(boolean log, double lo, double hi, double[] ticks) {
        this.log = log;
        this.lo = lo;
        this.hi = hi;
        this.ticks = ticks;
    }

    /** Whether {@code v} can be drawn on this axis (finite, and positive on a log axis). */
    static boolean drawable(double v, boolean log) {
        return Double.isFinite(v) && (!log || v > 0);
    }

    /**
     * An axis over {@code values} (those not {@link #drawable} are ignored). {@code fromZero} keeps 0 in a linear
     * range; {@code ticksAtValues} puts the ticks exactly at the distinct values (e.g. the NFEs evaluated).
     */
    static ChartAxis over(List<Double> values, boolean log, boolean fromZero, boolean ticksAtValues) {
        double min = Double.POSITIVE_INFINITY;
        double max = Double.NEGATIVE_INFINITY;
        TreeSet<Double> distinct = new TreeSet<>();
        for (double v : values) {
            if (drawable(v, log)) {
                min = Math.min(min, v);
                max = Math.max(max, v);
                distinct.add(v);
            }
        }
        if (distinct.isEmpty()) {
            return log ? new ChartAxis(true, 1, 10, new double[] {1, 10}) : new ChartAxis(false, 0, 1, new double[] {0, 1});
        }
        return log ? logAxis(min, max, ticksAtValues ? distinct : null)
                : linearAxis(fromZero ? Math.min(0, min) : min, fromZero ? Math.max(0, max) : max,
                ticksAtValues ? distinct : null);
    }

    private static ChartAxis linearAxis(double min, double max, TreeSet<Double> at) {
        if (min == max) {
            double pad = min == 0 ? 1 : Math.abs(min) * 0.5;
            min -= pad;
            max += pad;
        }
        if (at != null) {
            double pad = (max - min) * 0.08;
            return new ChartAxis(false, min - pad, max + pad, toArray(at));
        }
        double step = niceStep((max - min) / (TARGET_TICKS - 1));
        double lo = Math.floor(min / step) * step;
        double hi = Math.ceil(max / step) * step;
        List<Double> ticks = new ArrayList<>();
        for (long k = Math.round(lo / step); k <= Math.round(hi / step); k++) {
            ticks.add(k * step);
        }
        return new ChartAxis(false, lo, hi, ticks.stream().mapToDouble(Double::doubleValue).toArray());
    }

    /** 1, 2 or 5 times a power of ten, at least {@code rough}. */
    static double niceStep(double rough) {
        double p = Math.pow(10, Math.floor(Math.log10(rough)));
        double f = rough / p;
        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
    }

    private static ChartAxis logAxis(double min, double max, TreeSet<Double> at) {
        double a = Math.log10(min);
        double b = Math.log10(max);
        if (b - a < 1e-9) {
            a -= 0.5;
            b += 0.5;
        }
        double pad = (b - a) * 0.06;
        double lo = Math.pow(10, a - pad);
        double hi = Math.pow(10, b + pad);
        if (at != null) {
            return new ChartAxis(true, lo, hi, toArray(at));
        }
        int[][] mantissas = {{1}, {1, 2, 5}};
        List<Double> ticks = new ArrayList<>();
        for (int[] set : mantissas) {
            ticks.clear();
            for (int e = (int) Math.floor(a - pad); e <= (int) Math.ceil(b + pad); e++) {
                for (int m : set) {
                    double t = m * Math.pow(10, e);
                    if (t >= lo && t <= hi) {
                        ticks.add(t);
                    }
                }
            }
            if (ticks.size() >= 3) {
                return new ChartAxis(true, lo, hi, ticks.stream().mapToDouble(Double::doubleValue).toArray());
            }
        }
        // less than a decade: round linear steps, placed on the log scale
        double step = niceStep((hi - lo) / (TARGET_TICKS - 1));
        ticks.clear();
        for (long k = (long) Math.ceil(lo / step); k * step <= hi; k++) {
            ticks.add(k * step);
        }
        return new ChartAxis(true, lo, hi, ticks.stream().mapToDouble(Double::doubleValue).toArray());
    }

    private static double[] toArray(TreeSet<Double> s) {
        return s.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** Position of {@code v} in [0, 1] along the axis. */
    double fraction(double v) {
        return log ? (Math.log(v) - Math.log(lo)) / (Math.log(hi) - Math.log(lo)) : (v - lo) / (hi - lo);
    }

    /** A short label: up to 4 significant digits, trailing zeros dropped, E notation for very large or small. */
    static String label(double v) {
        if (v == 0) {
            return "0";
        }
        double abs = Math.abs(v);
        if (abs >= 1e5 || abs < 1e-3) {
            String s = String.format(Locale.ROOT, "%.2E", v);
            String mant = s.substring(0, s.indexOf('E')).replaceAll("\\.?0+$", "");
            int exp = Integer.parseInt(s.substring(s.indexOf('E') + 1));
            return mant + "E" + exp;
        }
        return new BigDecimal(v).round(new MathContext(4)).stripTrailingZeros().toPlainString();
    }
}
