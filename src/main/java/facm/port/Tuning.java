package facm.port;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Launch parameters in force: the built-in {@link TuningTable} with an optional override file on top (written by
 * {@code autotune}). Launchers ask {@code Tuning.current().intValue("unary.fwd", "block", cc, 256)} once, when they
 * are constructed; the answer is the override for this architecture, else the table's row, else the launcher's
 * default.
 *
 * <p>The override file comes from {@code --tuning FILE} (port-check, autotune), else the system property
 * {@value #FILE_PROPERTY}, else the environment variable {@code FACM_TUNING}. Its lines are
 * {@code family.pass key arch value} ({@code arch}: {@code all} or {@code sm_XY}), {@code #} comments; every key must
 * be a tunable key of the table and every value one of its candidates, else it is refused with one line naming the
 * file, the line and the problem.
 */
public final class Tuning {
    public static final String FILE_PROPERTY = "facm.tuning";

    private static volatile Tuning current;

    private final TuningTable table;
    private final String overrideSource;
    private final Map<String, Integer> overrides; // "id key arch" -> value
    private final Set<String> read = ConcurrentHashMap.newKeySet();

    private Tuning(TuningTable table, String overrideSource, Map<String, Integer> overrides) {
        this.table = table;
        this.overrideSource = overrideSource;
        this.overrides = Map.copyOf(overrides);
    }

    /** The tuning of this process: built-in table plus the override named by the property or environment, if any. */
    public static Tuning current() {
        Tuning t = current;
        if (t == null) {
            synchronized (Tuning.class) {
                if (current == null) {
                    String file = System.getProperty(FILE_PROPERTY);
                    if (file == null || file.isBlank()) {
                        file = System.getenv("FACM_TUNING");
                    }
                    current = file == null || file.isBlank() ? builtIn() : withOverrideFile(Path.of(file.trim()));
                }
                t = current;
            }
        }
        return t;
    }

    /** Makes {@code t} the process's tuning (port-check --tuning, autotune trying candidates). */
    public static void install(Tuning t) {
        current = t;
    }

    public static Tuning builtIn() {
        return new Tuning(TuningTable.builtIn(), "", Map.of());
    }

    public static Tuning withOverrideFile(Path file) {
        TuningTable table = TuningTable.builtIn();
        String text;
        try {
            text = Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new TuningException("tuning override " + file + " does not exist");
        } catch (IOException e) {
            throw new TuningException("cannot read tuning override " + file + ": " + e.getMessage());
        }
        return new Tuning(table, file.toString(), parseOverrides(table, file.toString(), text));
    }

    /** The built-in table with {@code overrides} ("id key arch" → value, already valid) on top. */
    public static Tuning withOverrides(TuningTable table, String source, Map<String, Integer> overrides) {
        return new Tuning(table, source, overrides);
    }

    public static Map<String, Integer> parseOverrides(TuningTable table, String source, String text) {
        Map<String, Integer> m = new ConcurrentHashMap<>();
        Map<String, Integer> lineOf = new ConcurrentHashMap<>();
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            int ln = i + 1;
            String line = TuningTable.stripComment(lines[i]).trim();
            if (line.isEmpty()) {
                continue;
            }
            String[] f = line.split("\\s+");
            if (f.length != 4) {
                throw new TuningException(source + ":" + ln + ": expected 'family.pass key arch value', got "
                        + f.length + " fields: " + line);
            }
            String id = TuningTable.checkId(source, ln, f[0]);
            int arch = TuningTable.parseArch(source, ln, f[2]);
            int value = TuningTable.parsePositive(source, ln, "value", f[3]);
            if (!table.ids().contains(id)) {
                throw new TuningException(source + ":" + ln + ": unknown family '" + id + "' (not in "
                        + table.source() + ")");
            }
            List<Integer> candidates = table.candidates(id, f[1]);
            if (candidates.isEmpty()) {
                throw new TuningException(source + ":" + ln + ": " + id + " has no tunable key '" + f[1] + "'"
                        + tunableKeys(table, id));
            }
            if (!candidates.contains(value)) {
                throw new TuningException(source + ":" + ln + ": " + id + " " + f[1] + " = " + value
                        + " is not one of its candidates " + candidates);
            }
            String k = id + " " + f[1] + " " + TuningTable.archName(arch);
            Integer before = lineOf.put(k, ln);
            if (before != null) {
                throw new TuningException(source + ":" + ln + ": " + k + " is already set on line " + before);
            }
            m.put(k, value);
        }
        return m;
    }

    private static String tunableKeys(TuningTable table, String id) {
        List<String> keys = table.entries().stream().filter(e -> e.id().equals(id) && e.tunable()).map(e -> e.key())
                .distinct().toList();
        return keys.isEmpty() ? " (it has nothing tunable)" : " (its keys: " + String.join(", ", keys) + ")";
    }

    /**
     * The value of {@code key} of family {@code id} on compute capability {@code cc}: the override for sm_cc, else
     * the override for all architectures, else the table, else {@code fallback}.
     */
    public int intValue(String id, String key, int cc, int fallback) {
        read.add(id + " " + key);
        Integer v = overrides.get(id + " " + key + " sm_" + cc);
        if (v == null) {
            v = overrides.get(id + " " + key + " all");
        }
        if (v != null) {
            return v;
        }
        TuningTable.Entry e = table.lookup(id, key, cc);
        return e == null || !e.tunable() ? fallback : e.value();
    }

    /** True once some launcher asked for this key (autotune uses it to tell wired parameters from unwired ones). */
    public boolean wasRead(String id, String key) {
        return read.contains(id + " " + key);
    }

    public TuningTable table() {
        return table;
    }

    /** "built-in table" or "built-in table + override FILE (n values)". */
    public String describe() {
        return overrideSource.isEmpty() ? "built-in " + table.source()
                : "built-in " + table.source() + " + override " + overrideSource + " (" + overrides.size() + " values)";
    }

    /** The override file text for {@code values} ("id key arch" → value) with a comment header. */
    public static String formatOverrides(List<String> headerLines, Map<String, Integer> values) {
        StringBuilder b = new StringBuilder();
        for (String h : headerLines) {
            b.append("# ").append(h).append('\n');
        }
        b.append("# family.pass            key        arch    value\n");
        List<String> keys = new ArrayList<>(values.keySet());
        keys.sort(null);
        for (String k : keys) {
            String[] p = k.split(" ");
            b.append(String.format(java.util.Locale.ROOT, "%-24s %-10s %-7s %d%n", p[0], p[1], p[2], values.get(k)));
        }
        return b.toString();
    }
}
