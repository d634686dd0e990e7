package facm.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What one benchmark invocation does (items such as images or samples, FLOP, bytes moved) and the GPU time of each
 * measured invocation, for {@link GpuTimeProfiler} to turn into JMH secondary metrics. Static because JMH's profilers
 * and the benchmark state meet only in the forked JVM, which runs one benchmark at a time.
 *
 * <p>Times come from CUDA events around the measured region ({@link RegionTimer}); the profiler reports the median of
 * an iteration's invocations, so a stray slow step (a host hiccup, an arena refill) does not move the number.
 */
final class GpuTimes {
    /** Per-invocation work; zero where a quantity does not apply (e.g. bytes for a GEMM-bound step). */
    record Work(String itemName, double items, double flop, double bytes, double cardBf16Tflops) {
    }

    private static Work work = new Work("items", 0, 0, 0, 0);
    private static final List<Double> millis = new ArrayList<>();
    /** Every time of the trial: since {@link #resetTrial()}, or since the first measurement iteration under the profiler. */
    private static final List<Double> trialMillis = new ArrayList<>();
    private static boolean measuring;
    private static long peakMemoryBytes = -1;

    private GpuTimes() {
    }

    static synchronized void describe(Work w) {
        work = w;
    }

    static synchronized Work work() {
        return work;
    }

    static synchronized void add(double ms) {
        millis.add(ms);
        trialMillis.add(ms);
    }

    /** A benchmark's trial setup: forget everything, including the work description's peak memory. */
    static synchronized void resetTrial() {
        millis.clear();
        trialMillis.clear();
        measuring = false;
        peakMemoryBytes = -1;
    }

    /** The profiler at the first measurement iteration: warm-up times leave the trial's list. */
    static synchronized void measurementStarts() {
        if (!measuring) {
            measuring = true;
            trialMillis.clear();
        }
    }

    /** Forgets this iteration's times (the profiler calls it before each iteration). */
    static synchronized void clear() {
        millis.clear();
    }

    /** Median of the times added since the last {@link #clear()}, or NaN when none were. */
    static synchronized double medianMillis() {
        return median(millis);
    }

    /** Median over the trial (warm-up included when no profiler marked the start of measurement). */
    static synchronized double trialMedianMillis() {
        return median(trialMillis);
    }

    static synchronized int trialCount() {
        return trialMillis.size();
    }

    private static double median(List<Double> times) {
        if (times.isEmpty()) {
            return Double.NaN;
        }
        double[] v = times.stream().mapToDouble(Double::doubleValue).toArray();
        Arrays.sort(v);
        int n = v.length;
        return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }

    /** The device's peak bytes in use since the benchmark's reset (-1: not tracked, e.g. the CPU backend). */
    static synchronized void peakMemory(long bytes) {
        peakMemoryBytes = bytes;
    }

    static synchronized long peakMemory() {
        return peakMemoryBytes;
    }
}
