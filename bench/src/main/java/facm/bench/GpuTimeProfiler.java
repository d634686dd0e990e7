package facm.bench;

import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.profile.InternalProfiler;
import org.openjdk.jmh.results.AggregationPolicy;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.ScalarResult;
import org.openjdk.jmh.runner.IterationType;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * Turns the CUDA-event times of {@link GpuTimes} into JMH secondary metrics, one value per measurement iteration
 * (JMH averages them over the iterations): enable with {@code -prof facm.bench.GpuTimeProfiler}.
 * <ul>
 *   <li>{@code gpu.ms}: median GPU time of one invocation (CUDA events around the measured region);</li>
 *   <li>{@code gpu.<items>/s}: images or samples per second of GPU time (items per invocation / median);</li>
 *   <li>{@code gpu.TFLOP/s} and {@code gpu.ofBf16Peak}: the invocation's counted FLOP over the median, and that rate
 *       as a fraction of the card's bf16 rate measured in the same JVM ({@link CardRate});</li>
 *   <li>{@code gpu.GB/s}: bytes moved over the median, for the bandwidth-bound kernels;</li>
 *   <li>{@code card.bf16TFLOP/s} and {@code mem.peakGiB} (device peak in use since the benchmark's reset).</li>
 * </ul>
 * Without the profiler the benchmarks still print the same numbers at the end of each trial.
 */
public final class GpuTimeProfiler implements InternalProfiler {

    @Override
    public String getDescription() {
        return "facm: median GPU time (CUDA events) per invocation, with items/s, TFLOP/s and fraction of the bf16 rate";
    }

    @Override
    public void beforeIteration(BenchmarkParams benchmarkParams, IterationParams iterationParams) {
        GpuTimes.clear();
        if (iterationParams.getType() == IterationType.MEASUREMENT) {
            GpuTimes.measurementStarts();
        }
    }

    @Override
    public Collection<? extends Result> afterIteration(BenchmarkParams benchmarkParams, IterationParams iterationParams,
                                                       IterationResult result) {
        List<Result> out = new ArrayList<>();
        if (iterationParams.getType() != IterationType.MEASUREMENT) {
            return out;
        }
        for (Metric m : metrics(GpuTimes.work(), GpuTimes.medianMillis(), GpuTimes.peakMemory())) {
            out.add(new ScalarResult(m.label(), m.value(), m.unit(), AggregationPolicy.AVG));
        }
        return out;
    }

    /** One secondary metric; NaN and infinite values are never reported (JMH's JSON cannot hold them). */
    record Metric(String label, double value, String unit) {
    }

    /** The metrics derivable from one median time; also what the benchmarks print at the end of a trial. */
    static List<Metric> metrics(GpuTimes.Work w, double medianMs, long peakBytes) {
        List<Metric> out = new ArrayList<>();
        if (!(medianMs > 0) || Double.isInfinite(medianMs)) {
            return out;
        }
        double seconds = medianMs / 1e3;
        out.add(new Metric("gpu.ms", medianMs, "ms"));
        if (w.items() > 0) {
            out.add(new Metric("gpu." + w.itemName() + "/s", w.items() / seconds, w.itemName() + "/s"));
        }
        if (w.flop() > 0) {
            double tflops = w.flop() / seconds / 1e12;
            out.add(new Metric("gpu.TFLOP/s", tflops, "TFLOP/s"));
            if (w.cardBf16Tflops() > 0) {
                out.add(new Metric("gpu.ofBf16Peak", tflops / w.cardBf16Tflops(), "fraction"));
            }
        }
        if (w.bytes() > 0) {
            out.add(new Metric("gpu.GB/s", w.bytes() / seconds / 1e9, "GB/s"));
        }
        if (w.cardBf16Tflops() > 0) {
            out.add(new Metric("card.bf16TFLOP/s", w.cardBf16Tflops(), "TFLOP/s"));
        }
        if (peakBytes >= 0) {
            out.add(new Metric("mem.peakGiB", peakBytes / (double) (1L << 30), "GiB"));
        }
        return out;
    }

    /** "median of N: gpu.ms 12.3 ms, gpu.images/s 5200 ..." over the trial, for a benchmark's closing line. */
    static String summary() {
        StringBuilder b = new StringBuilder("median of " + GpuTimes.trialCount() + ": ");
        for (Metric m : metrics(GpuTimes.work(), GpuTimes.trialMedianMillis(), GpuTimes.peakMemory())) {
            if (b.charAt(b.length() - 2) != ':') {
                b.append(", ");
            }
            b.append(String.format(java.util.Locale.ROOT, "%s %.4g %s", m.label(), m.value(), m.unit()));
        }
        return GpuTimes.trialCount() == 0 ? "no GPU times recorded" : b.toString();
    }
}
