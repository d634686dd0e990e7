package facm.cli;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.Cuda;
import facm.cuda.KernelLibrary;
import facm.port.CardRates;
import facm.port.Dims;
import facm.port.MicroBenchmark;
import facm.port.PortCheck;
import facm.port.PortReport;
import facm.port.PortResult;
import facm.port.Tuning;
import facm.tensor.Device;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;

/**
 * {@code port-check}: every kernel family (forward, backward, JVP; F32 and BF16 where an op takes it) against the
 * CPU reference on random inputs, then a micro-benchmark rated against this card's own copy bandwidth and bf16 GEMM
 * rate. Runs from the jar alone (no JUnit). Exit 0 when every row passes or is skipped, 1 otherwise.
 */
@Command(name = "port-check", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Check every CUDA kernel family against the CPU reference and time it on this GPU; exits 1 if any fails.")
final class PortCheckCommand implements Callable<Integer> {
    @Option(names = "--device", defaultValue = "cuda:0", description = "the GPU to check, cuda:N (default ${DEFAULT-VALUE})")
    String device;
    @Option(names = "--quick", description = "smaller benchmark batch (4), 5 timed calls per kernel instead of 20")
    boolean quick;
    @Option(names = "--out", description = "also write the results as JSON to this file")
    Path out;
    @Option(names = "--force-ptx", description = "load the kernels from their PTX only (the driver JIT-compiles them): "
            + "proves the path an unknown newer GPU takes")
    boolean forcePtx;
    @Option(names = "--tuning", description = "tuning override file (from autotune); default: -Dfacm.tuning or $FACM_TUNING")
    Path tuning;
    @Option(names = "--only", description = "check only the kernels whose name matches this regular expression, e.g. 'attention'")
    String only;
    @Option(names = "--reps", description = "timed calls per kernel (default 20, --quick 5)")
    Integer reps;

    @Override
    public Integer call() throws Exception {
        int ordinal = cudaOrdinal("port-check", device);
        Pattern filter = only == null ? null : Pattern.compile(only);
        if (forcePtx) {
            System.setProperty(KernelLibrary.FORCE_PTX_PROPERTY, "true");
        }
        if (tuning != null) {
            Tuning.install(Tuning.withOverrideFile(tuning));
        }
        PrintStream o = System.out;
        Dims dims = quick ? Dims.QUICK_BENCH : Dims.BENCH;
        try (CudaBackend gpu = CudaBackend.open(ordinal); CpuBackend cpu = new CpuBackend()) {
            String code = gpu.cudaDevice().kernels().codePath();
            o.println("port-check on " + gpu.describe());
            o.println("kernels:   " + code + "; tuning: " + Tuning.current().describe());
            o.println("sizes:     correctness at " + Dims.ODD + " and " + Dims.ALIGNED + "; benchmark at " + dims);
            MicroBenchmark bench = new MicroBenchmark(gpu.cudaDevice(), quick ? 1 : 3, reps != null ? reps : quick ? 5 : 20);
            CardRates card = CardRates.measure(gpu, bench, quick ? 256L << 20 : 1L << 30, 8192);
            o.println("card:      " + card.describe());
            o.println();
            o.println(PortReport.header());
            PortCheck check = new PortCheck(gpu, cpu, bench, card, dims);
            List<PortResult> results = check.run(l -> filter == null || filter.matcher(l).find(), o);
            if (results.isEmpty()) {
                throw new IllegalArgumentException("--only '" + only + "' matches no kernel family");
            }
            o.println();
            String name = gpu.cudaDevice().name() + " (sm_" + gpu.cudaDevice().computeCapability() + ")";
            PortReport.print(o, name, code, card, results);
            if (out != null) {
                PortReport.writeJson(out, name, gpu.cudaDevice().computeCapability(), code, dims.toString(), card, results);
                o.println("wrote " + out);
            }
            return results.stream().anyMatch(PortResult::failed) ? 1 : 0;
        }
    }

    /**
     * The ordinal of a {@code cuda:N} device, or a one-line error: {@code cpu} is refused (comparing the CPU with
     * itself proves nothing), and so is a machine without a usable GPU ("no CUDA GPU: reason").
     */
    static int cudaOrdinal(String command, String spec) {
        Device d = Device.parse(spec);
        if (d.kind() == Device.Kind.CPU) {
            throw new IllegalArgumentException(command + " compares a CUDA device with the CPU reference; --device "
                    + spec + " would compare the CPU with itself. Use --device cuda:N");
        }
        if (!Cuda.available()) {
            throw new IllegalStateException("no CUDA GPU: " + Cuda.unavailableReason());
        }
        if (d.index() >= Cuda.deviceCount()) {
            throw new IllegalArgumentException("--device " + spec + ": this machine has " + Cuda.deviceCount() + " GPU(s)");
        }
        return d.index();
    }
}
