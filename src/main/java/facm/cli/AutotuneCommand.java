package facm.cli;

import facm.backend.cpu.CpuBackend;
import facm.cuda.CudaDevice;
import facm.port.Autotune;
import facm.port.CardRates;
import facm.port.Dims;
import facm.port.MicroBenchmark;
import facm.port.Tuning;
import facm.backend.cuda.CudaBackend;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;

/**
 * {@code autotune}: searches the tuning table's candidates on this GPU (each checked against the CPU, then timed)
 * and writes the winners as an override file for this architecture, which the engine and port-check read through
 * {@code --tuning FILE}, {@code -Dfacm.tuning=FILE} or {@code FACM_TUNING=FILE}.
 */
@Command(name = "autotune", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Search launch parameters (block sizes, rows per block) on this GPU and write a tuning override file.")
final class AutotuneCommand implements Callable<Integer> {
    @Option(names = "--device", defaultValue = "cuda:0", description = "the GPU to tune, cuda:N (default ${DEFAULT-VALUE})")
    String device;
    @Option(names = "--out", defaultValue = "facm-tuning.table", description = "override file to write (default ${DEFAULT-VALUE})")
    Path out;
    @Option(names = "--quick", description = "smaller benchmark batch and fewer timed calls")
    boolean quick;
    @Option(names = "--only", description = "tune only the families whose id matches this regular expression")
    String only;

    @Override
    public Integer call() throws Exception {
        int ordinal = PortCheckCommand.cudaOrdinal("autotune", device);
        Pattern filter = only == null ? null : Pattern.compile(only);
        Tuning base = Tuning.builtIn();
        Dims dims = quick ? Dims.QUICK_BENCH : Dims.BENCH;
        try (CudaBackend gpu = CudaBackend.open(ordinal); CpuBackend cpu = new CpuBackend()) {
            CudaDevice d = gpu.cudaDevice();
            System.out.println("autotune on " + gpu.describe() + "; benchmark at " + dims);
            MicroBenchmark bench = new MicroBenchmark(d, quick ? 1 : 3, quick ? 5 : 15);
            CardRates card = CardRates.measure(gpu, bench, 256L << 20, 4096);
            List<Autotune.Choice> choices = new Autotune(d, cpu, bench, card, dims)
                    .run(base, id -> filter == null || filter.matcher(id).find(), System.out);
            Map<String, Integer> values = new LinkedHashMap<>();
            for (Autotune.Choice c : choices) {
                if (c.best() != null) {
                    values.put(c.id() + " " + c.key() + " sm_" + d.computeCapability(), c.best());
                }
            }
            String text = Tuning.formatOverrides(List.of("tuning override written by facm-engine autotune",
                    "device: " + d.name() + " (sm_" + d.computeCapability() + "), " + Instant.now(),
                    "use: port-check --tuning FILE, java -Dfacm.tuning=FILE ..., or FACM_TUNING=FILE"), values);
            Tuning.parseOverrides(base.table(), out.toString(), text); // what we write must read back
            Path parent = out.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
            Files.writeString(out, text, StandardCharsets.UTF_8);
            long notWired = choices.stream().filter(c -> c.account().startsWith("not wired")).count();
            System.out.printf("wrote %s: %d values (%d keys not wired to a launcher yet)%n", out, values.size(), notWired);
            return 0;
        }
    }
}
