package facm.port;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The launch-parameter table: one row per kernel family and pass ({@code attention.fwd}, ...), and for families with
 * tunable launch parameters one row per key and architecture. Resource {@value #RESOURCE}; columns (whitespace
 * separated, {@code #} starts a comment):
 * <pre>
 *   family.pass   key     arch    value   candidates         read by (free text to the end of the line)
 *   unary.fwd     block   all     256     128,256,512,1024   ElementwiseKernels
 *   unary.fwd     block   sm_80   256     128,256,512,1024   ElementwiseKernels
 *   attention.fwd -       all     -       -                  nothing tunable: one instantiation per head dim
 * </pre>
 * {@code arch} is {@code all} or {@code sm_XY}; a lookup for compute capability XY takes the row for sm_XY, else the
 * row of the highest listed architecture below it, else {@code all}. {@code value} must be one of the candidates
 * (what the launcher is known to handle, and what {@code autotune} searches).
 */
public final class TuningTable {
    public static final String RESOURCE = "/facm/kernels/tuning.table";

    /** One row. {@code key} "-" marks a family with nothing tunable (value 0, no candidates). */
    public record Entry(String id, String key, int arch, int value, List<Integer> candidates, String readBy, int line) {
        public boolean tunable() {
            return !key.equals("-");
        }
    }

    private final String source;
    private final List<Entry> entries;

    private TuningTable(String source, List<Entry> entries) {
        this.source = source;
        this.entries = List.copyOf(entries);
    }

    public static TuningTable builtIn() {
        try (InputStream in = TuningTable.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new TuningException(RESOURCE.substring(1) + " is missing from this jar");
            }
            return parse(RESOURCE.substring(1), new String(in.readAllBytes(), StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new TuningException("cannot read " + RESOURCE + ": " + e.getMessage());
        }
    }

    public static TuningTable parse(String source, String text) {
        List<Entry> entries = new ArrayList<>();
        Map<String, Integer> seen = new LinkedHashMap<>();
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            int ln = i + 1;
            String line = stripComment(lines[i]);
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.trim().split("\\s+", 6);
            if (f.length < 5) {
                throw new TuningException(source + ":" + ln + ": expected 'family.pass key arch value candidates"
                        + " [read by]', got " + f.length + " fields: " + line.trim());
            }
            String id = checkId(source, ln, f[0]);
            int arch = parseArch(source, ln, f[2]);
            Entry e;
            if (f[1].equals("-")) {
                if (!f[3].equals("-") || !f[4].equals("-")) {
                    throw new TuningException(source + ":" + ln + ": a row with key '-' (nothing tunable) needs value"
                            + " and candidates '-', got '" + f[3] + "' and '" + f[4] + "'");
                }
                e = new Entry(id, "-", arch, 0, List.of(), f.length > 5 ? f[5].trim() : "", ln);
            } else {
                List<Integer> candidates = new ArrayList<>();
                for (String c : f[4].split(",")) {
                    candidates.add(parsePositive(source, ln, "candidate", c));
                }
                int value = parsePositive(source, ln, "value", f[3]);
                if (!candidates.contains(value)) {
                    throw new TuningException(source + ":" + ln + ": value " + value + " of " + id + " " + f[1]
                            + " is not among its candidates " + candidates);
                }
                e = new Entry(id, f[1], arch, value, List.copyOf(candidates), f.length > 5 ? f[5].trim() : "", ln);
            }
            String k = id + " " + e.key() + " " + archName(arch);
            Integer before = seen.put(k, ln);
            if (before != null) {
                throw new TuningException(source + ":" + ln + ": " + k + " is already set on line " + before);
            }
            entries.add(e);
        }
        return new TuningTable(source, entries);
    }

    public String source() {
        return source;
    }

    public List<Entry> entries() {
        return entries;
    }

    /** The family ids (family.pass) the table has a row for. */
    public List<String> ids() {
        return entries.stream().map(Entry::id).distinct().toList();
    }

    /** The row that applies to compute capability {@code cc}, or null (see the class comment for the rule). */
    public Entry lookup(String id, String key, int cc) {
        Entry best = null;
        for (Entry e : entries) {
            if (!e.id().equals(id) || !e.key().equals(key) || e.arch() > cc) {
                continue;
            }
            if (best == null || e.arch() > best.arch()) {
                best = e; // arch 0 ("all") loses to any listed architecture not above cc
            }
        }
        return best;
    }

    /** The candidates of a tunable key (any architecture's row), or an empty list when there is no such key. */
    public List<Integer> candidates(String id, String key) {
        return entries.stream().filter(e -> e.id().equals(id) && e.key().equals(key)).findFirst()
                .map(Entry::candidates).orElse(List.of());
    }

    static String stripComment(String line) {
        int h = line.indexOf('#');
        return h < 0 ? line : line.substring(0, h);
    }

    static String checkId(String source, int ln, String id) {
        if (!id.matches("[a-z0-9_]+\\.(fwd|bwd|jvp)")) {
            throw new TuningException(source + ":" + ln + ": '" + id + "' is not a family id like attention.fwd"
                    + " (family.fwd|bwd|jvp)");
        }
        return id;
    }

    /** "all" → 0, "sm_90" → 90. */
    static int parseArch(String source, int ln, String s) {
        if (s.equals("all")) {
            return 0;
        }
        if (!s.matches("sm_[0-9]{2,3}")) {
            throw new TuningException(source + ":" + ln + ": architecture '" + s + "' is not 'all' or sm_XY (e.g. sm_90)");
        }
        return Integer.parseInt(s.substring(3));
    }

    static String archName(int arch) {
        return arch == 0 ? "all" : "sm_" + arch;
    }

    static int parsePositive(String source, int ln, String what, String s) {
        try {
            int v = Integer.parseInt(s.trim());
            if (v > 0) {
                return v;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new TuningException(source + ":" + ln + ": " + what + " '" + s.trim() + "' is not a positive integer");
    }

    @Override
    public String toString() {
        return source + " (" + entries.size() + " rows: " + Arrays.toString(ids().toArray()) + ")";
    }
}
