package facm.port;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaDevice;
import facm.tensor.DType;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Predicate;

/**
 * Searches the tuning table's candidates on the present GPU. For each tunable key of each family it installs one
 * candidate at a time as an override for this architecture, opens a fresh backend (launchers read their parameters
 * when constructed), and runs the family's F32 port-check rows: correctness first (a candidate that fails is never
 * chosen), then the median time at the benchmark size. The fastest passing candidate wins. A key no launcher reads
 * (its launcher still uses a constant) is reported "not wired" after the first candidate and left out of the file.
 */
public final class Autotune {
    /** Outcome for one key: the winner (or null) and a one-line account. */
    public record Choice(String id, String key, Integer best, String account) {
    }

    private final CudaDevice device;
    private final CpuBackend cpu;
    private final MicroBenchmark bench;
    private final CardRates card;
    private final Dims dims;

    public Autotune(CudaDevice device, CpuBackend cpu, MicroBenchmark bench, CardRates card, Dims dims) {
        this.device = device;
        this.cpu = cpu;
        this.bench = bench;
        this.card = card;
        this.dims = dims;
    }

    public List<Choice> run(Tuning base, Predicate<String> filter, PrintStream log) {
        int cc = device.computeCapability();
        List<Choice> choices = new ArrayList<>();
        Map<String, Boolean> done = new LinkedHashMap<>();
        try {
            for (TuningTable.Entry e : base.table().entries()) {
                if (!e.tunable() || !filter.test(e.id()) || done.put(e.id() + " " + e.key(), true) != null) {
                    continue;
                }
                Choice c = tune(base.table(), e.id(), e.key(), cc);
                log.println(String.format(Locale.ROOT, "%-24s %-15s %s", c.id(), c.key(), c.account()));
                choices.add(c);
            }
        } finally {
            Tuning.install(base);
        }
        return choices;
    }

    private Choice tune(TuningTable table, String id, String key, int cc) {
        List<KernelFamily> rows = KernelFamilies.all().stream()
                .filter(f -> f.id().equals(id) && f.dtype() == DType.F32).toList();
        if (rows.isEmpty()) {
            return new Choice(id, key, null, "no port-check rows for this family");
        }
        StringBuilder account = new StringBuilder();
        Integer best = null;
        double bestMs = Double.POSITIVE_INFINITY;
        for (int candidate : table.candidates(id, key)) {
            Tuning t = Tuning.withOverrides(table, "autotune", Map.of(id + " " + key + " sm_" + cc, candidate));
            Tuning.install(t);
            double total = 0;
            String failure = null;
            try (CudaBackend gpu = CudaBackend.on(device)) {
                PortCheck check = new PortCheck(gpu, cpu, bench, card, dims);
                for (KernelFamily f : rows) {
                    PortResult r = check.runOne(f);
                    if (r.status() != PortResult.Status.PASS) {
                        failure = r.label() + " " + r.status() + " " + r.note();
                        break;
                    }
                    total += r.millis();
                }
            }
            if (!t.wasRead(id, key)) {
                return new Choice(id, key, null, "not wired: no launcher reads it yet (see the table's last column)");
            }
            account.append(account.isEmpty() ? "" : ", ").append(candidate).append(": ")
                    .append(failure == null ? String.format(Locale.ROOT, "%.1f us", total * 1e3) : "FAIL");
            if (failure == null && total < bestMs) {
                bestMs = total;
                best = candidate;
            }
        }
        if (best == null) {
            return new Choice(id, key, null, "no candidate passed (" + account + ")");
        }
        return new Choice(id, key, best, "best " + best + " (" + account + ")");
    }
}
