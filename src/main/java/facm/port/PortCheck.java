package facm.port;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.Cuda;
import facm.cuda.CudaException;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * Runs every registered kernel family on a CUDA backend against the CPU reference ({@link #check}) and times it
 * ({@link #time}). Correctness runs at the odd and the aligned sizes of {@link Dims} with per-launch error checking
 * on; the benchmark runs at the benchmark size without it. A bf16 row that one backend refuses (the op takes F32
 * only there) is SKIP, not FAIL; any CUDA error, NaN or error above the row's tolerance is FAIL.
 */
public final class PortCheck {
    private final CudaBackend gpu;
    private final CpuBackend cpu;
    private final MicroBenchmark bench;
    private final CardRates card;
    private final Dims benchDims;
    private final List<String> modules;
    private final String kernelCode;

    public PortCheck(CudaBackend gpu, CpuBackend cpu, MicroBenchmark bench, CardRates card, Dims benchDims) {
        this.gpu = gpu;
        this.cpu = cpu;
        this.bench = bench;
        this.card = card;
        this.benchDims = benchDims;
        this.modules = gpu.cudaDevice().kernels().moduleNames();
        this.kernelCode = gpu.cudaDevice().kernels().codePath();
    }

    public CardRates card() {
        return card;
    }

    /** Checks and times every family whose label {@code filter} accepts; {@code log} gets one line per row. */
    public List<PortResult> run(Predicate<String> filter, PrintStream log) {
        List<PortResult> results = new ArrayList<>();
        for (KernelFamily f : KernelFamilies.all()) {
            if (filter.test(f.label())) {
                PortResult r = runOne(f);
                results.add(r);
                log.println(PortReport.line(r));
            }
        }
        return results;
    }

    public PortResult runOne(KernelFamily f) {
        int cc = gpu.cudaDevice().computeCapability();
        String variant = f.variant().describe(cc, f.dtype(), modules);
        String code = f.variant().isLibrary() ? "cuBLASLt" : kernelCode;
        String unit = f.computeBound() ? "TFLOP/s" : "GB/s";
        double worst = 0;
        for (Dims d : List.of(Dims.ODD, Dims.ALIGNED)) {
            Outcome o = check(f, d);
            if (o.status != PortResult.Status.PASS) {
                return new PortResult(f.label(), variant, code, o.status, o.error, f.tolerance(), Double.NaN,
                        Double.NaN, unit, Double.NaN, o.note + " at " + d.label());
            }
            worst = Math.max(worst, o.error);
        }
        double ms;
        double rate;
        double fraction;
        try {
            Timing t = time(f, benchDims);
            ms = t.millis;
            if (f.computeBound()) {
                rate = f.flops().flops(benchDims) / (ms * 1e-3) / 1e12;
                fraction = rate * 1e12 / card.gemmFlopsPerSecond();
            } else {
                rate = t.bytes / (ms * 1e-3) / 1e9;
                fraction = rate * 1e9 / card.copyBytesPerSecond();
            }
        } catch (RuntimeException e) {
            return new PortResult(f.label(), variant, code, PortResult.Status.FAIL, worst, f.tolerance(), Double.NaN,
                    Double.NaN, unit, Double.NaN, "benchmark at " + benchDims.label() + ": " + oneLine(e));
        }
        return new PortResult(f.label(), variant, code, PortResult.Status.PASS, worst, f.tolerance(), ms, rate, unit,
                fraction, "");
    }

    private record Outcome(PortResult.Status status, double error, String note) {
    }

    private record Timing(double millis, long bytes) {
    }

    /** One correctness run: the same inputs on both backends, then max |cuda − cpu| / max |cpu| over the outputs. */
    private Outcome check(KernelFamily f, Dims d) {
        List<float[]> reference = new ArrayList<>();
        try (CaseInputs in = new CaseInputs(cpu, f.dtype(), f.seed())) {
            Prepared p = f.op().prepare(in, d);
            p.run().run();
            for (Tensor t : p.outputs()) {
                reference.add(cpu.download(t));
            }
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            return refused(f, "cpu", e);
        }
        boolean syncCheck = Cuda.syncCheck();
        Cuda.setSyncCheck(true); // a kernel fault is then reported at the launch that caused it
        try (CaseInputs in = new CaseInputs(gpu, f.dtype(), f.seed())) {
            Prepared p = f.op().prepare(in, d);
            p.run().run();
            gpu.synchronize();
            double worst = 0;
            for (int i = 0; i < p.outputs().size(); i++) {
                Tensor t = p.outputs().get(i);
                double e = maxRelativeError(reference.get(i), gpu.download(t));
                if (!(e <= f.tolerance())) {
                    return new Outcome(PortResult.Status.FAIL, e, "output " + t.name() + " off by " + fmt(e)
                            + " (tolerance " + fmt(f.tolerance()) + ")");
                }
                worst = Math.max(worst, e);
            }
            return new Outcome(PortResult.Status.PASS, worst, "");
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            return refused(f, "cuda", e);
        } catch (CudaException e) {
            return new Outcome(PortResult.Status.FAIL, Double.NaN, oneLine(e));
        } finally {
            Cuda.setSyncCheck(syncCheck);
        }
    }

    /** A bf16 row an op refuses is skipped (the op is F32-only there); an F32 row refused is a defect. */
    private static Outcome refused(KernelFamily f, String backend, RuntimeException e) {
        PortResult.Status s = f.dtype() == DType.BF16 ? PortResult.Status.SKIP : PortResult.Status.FAIL;
        return new Outcome(s, Double.NaN, backend + " refuses: " + oneLine(e));
    }

    private Timing time(KernelFamily f, Dims d) {
        try (CaseInputs in = new CaseInputs(gpu, f.dtype(), f.seed())) {
            Prepared p = f.op().prepare(in, d);
            gpu.synchronize();
            double ms = bench.medianMillis(p.run());
            return new Timing(ms, in.bytesTouched());
        }
    }

    /** max_i |got_i − want_i| / max_i |want_i|; infinite when got has a NaN or Inf where want has none. */
    public static double maxRelativeError(float[] want, float[] got) {
        if (want.length != got.length) {
            return Double.POSITIVE_INFINITY;
        }
        double scale = 0;
        for (float w : want) {
            if (Float.isFinite(w)) {
                scale = Math.max(scale, Math.abs(w));
            }
        }
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            float w = want[i];
            float g = got[i];
            if (Float.compare(w, g) == 0) {
                continue;
            }
            if (!Float.isFinite(w) || !Float.isFinite(g)) {
                return Double.POSITIVE_INFINITY;
            }
            worst = Math.max(worst, Math.abs((double) g - w));
        }
        return worst == 0 ? 0 : worst / Math.max(scale, Double.MIN_NORMAL);
    }

    static String oneLine(Throwable e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        return m.replace('\n', ' ');
    }

    static String fmt(double v) {
        return String.format(java.util.Locale.ROOT, "%.2e", v);
    }
}
