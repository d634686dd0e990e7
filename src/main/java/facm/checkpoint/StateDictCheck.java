package facm.checkpoint;

import facm.tensor.Shapes;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/** Compares the tensors a checkpoint holds with the table a model expects (name → shape). */
public final class StateDictCheck {
    private StateDictCheck() {
    }

    /**
     * Every problem, one line each, in the expected table's order (missing keys and shape mismatches), then the
     * unexpected keys in the file's order.
     */
    public static List<String> problems(Map<String, int[]> expected, Map<String, int[]> found, String file) {
        List<String> out = new ArrayList<>();
        for (Map.Entry<String, int[]> e : expected.entrySet()) {
            int[] have = found.get(e.getKey());
            if (have == null) {
                out.add("missing key '" + e.getKey() + "' in " + file);
            } else if (!Arrays.equals(have, e.getValue())) {
                out.add("'" + e.getKey() + "' in " + file + " has shape " + Shapes.str(have) + ", expected "
                        + Shapes.str(e.getValue()));
            }
        }
        for (String k : found.keySet()) {
            if (!expected.containsKey(k)) {
                out.add("unexpected key '" + k + "' in " + file);
            }
        }
        return out;
    }

    /**
     * Throws a {@link CheckpointException} unless {@code found} matches {@code expected} exactly. The message is
     * the first problem, followed by how many more there are and what they are, briefly.
     */
    public static void verify(Map<String, int[]> expected, Map<String, int[]> found, String file) {
        List<String> p = problems(expected, found, file);
        if (p.isEmpty()) {
            return;
        }
        StringBuilder msg = new StringBuilder(p.get(0));
        if (p.size() > 1) {
            long missing = p.stream().filter(s -> s.startsWith("missing key")).count();
            long unexpected = p.stream().filter(s -> s.startsWith("unexpected key")).count();
            long shape = p.size() - missing - unexpected;
            msg.append(" (").append(p.size() - 1).append(" more problems; in all ").append(missing)
                    .append(" missing, ").append(unexpected).append(" unexpected, ").append(shape)
                    .append(" with the wrong shape)");
        }
        throw new CheckpointException(msg.toString());
    }
}
