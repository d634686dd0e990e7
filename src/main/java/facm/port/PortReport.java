package facm.port;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/** The port check's table (stdout) and JSON file ({@code --out}). */
public final class PortReport {
    private static final String HEADER = String.format(Locale.ROOT, "%-34s %-44s %-6s %-9s %-10s %-10s %s",
            "kernel", "variant", "status", "max-rel", "time", "achieved", "of card");

    private PortReport() {
    }

    public static String header() {
        return HEADER;
    }

    /** One table row, e.g. "attention.fwd  fp32 SIMT ...  PASS  3.1e-07  0.412 ms  41.2 TFLOP/s  5.3 %". */
    public static String line(PortResult r) {
        String time = Double.isNaN(r.millis()) ? "-" : r.millis() >= 1 ? String.format(Locale.ROOT, "%.2f ms", r.millis())
                : String.format(Locale.ROOT, "%.1f us", r.millis() * 1e3);
        String rate = Double.isNaN(r.rate()) ? "-" : String.format(Locale.ROOT, "%.1f %s", r.rate(), r.unit());
        String frac = Double.isNaN(r.fraction()) ? "-" : String.format(Locale.ROOT, "%.1f %%", 100 * r.fraction());
        String err = Double.isNaN(r.maxRelError()) ? "-" : String.format(Locale.ROOT, "%.1e", r.maxRelError());
        String s = String.format(Locale.ROOT, "%-34s %-44s %-6s %-9s %-10s %-10s %s", r.label(), clip(r.variant(), 44),
                r.status(), err, time, rate, frac);
        return r.note().isEmpty() ? s : s + "  (" + r.note() + ")";
    }

    public static void print(PrintStream out, String device, String code, CardRates card, List<PortResult> results) {
        out.println(summary(device, code, card, results));
    }

    public static String summary(String device, String code, CardRates card, List<PortResult> results) {
        long pass = results.stream().filter(r -> r.status() == PortResult.Status.PASS).count();
        long fail = results.stream().filter(PortResult::failed).count();
        long skip = results.size() - pass - fail;
        return String.format(Locale.ROOT, "port-check %s on %s, kernels %s; card: %s: %d passed, %d failed, %d skipped",
                fail == 0 ? "PASSED" : "FAILED", device, code, card.describe(), pass, fail, skip);
    }

    public static void writeJson(Path file, String device, int computeCapability, String code, String dims,
                                 CardRates card, List<PortResult> results) throws IOException {
        StringBuilder b = new StringBuilder();
        b.append("{\n  \"device\": ").append(str(device)).append(",\n  \"compute_capability\": ").append(computeCapability)
                .append(",\n  \"kernel_code\": ").append(str(code)).append(",\n  \"benchmark_sizes\": ").append(str(dims))
                .append(",\n  \"card\": {\"copy_gb_per_s\": ").append(num(card.copyBytesPerSecond() / 1e9))
                .append(", \"bf16_gemm_tflop_per_s\": ").append(num(card.gemmFlopsPerSecond() / 1e12))
                .append(", \"gemm_n\": ").append(card.gemmSize()).append("},\n  \"passed\": ")
                .append(results.stream().noneMatch(PortResult::failed)).append(",\n  \"kernels\": [\n");
        for (int i = 0; i < results.size(); i++) {
            PortResult r = results.get(i);
            b.append("    {\"kernel\": ").append(str(r.label())).append(", \"variant\": ").append(str(r.variant()))
                    .append(", \"code\": ").append(str(r.code())).append(", \"status\": ").append(str(r.status().name()))
                    .append(", \"max_rel_error\": ").append(num(r.maxRelError())).append(", \"tolerance\": ")
                    .append(num(r.tolerance())).append(", \"ms\": ").append(num(r.millis())).append(", \"rate\": ")
                    .append(num(r.rate())).append(", \"unit\": ").append(str(r.unit())).append(", \"fraction_of_card\": ")
                    .append(num(r.fraction())).append(", \"note\": ").append(str(r.note())).append('}')
                    .append(i + 1 < results.size() ? ",\n" : "\n");
        }
        b.append("  ]\n}\n");
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        Files.writeString(file, b, StandardCharsets.UTF_8);
    }

    private static String clip(String s, int n) {
        return s.length() <= n ? s : s.substring(0, n - 1) + "~";
    }

    private static String num(double v) {
        return Double.isFinite(v) ? String.format(Locale.ROOT, "%.6g", v) : "null";
    }

    static String str(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
