package facm.port;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The override file autotune writes reads back to the same values; bad files are refused with one clear line. */
class TuningOverrideTest {
    @TempDir
    Path dir;

    @Test
    void writtenOverridesReadBackAndWinOverTheTable() throws IOException {
        Map<String, Integer> values = new LinkedHashMap<>();
        values.put("unary.fwd block sm_90", 512);
        values.put("rmsnorm.fwd rows_per_block all", 4);
        Path file = dir.resolve("tuning.table");
        Files.writeString(file, Tuning.formatOverrides(List.of("test", "device: none"), values));
        Tuning t = Tuning.withOverrideFile(file);
        assertEquals(values, Tuning.parseOverrides(t.table(), file.toString(), Files.readString(file)));
        assertEquals(512, t.intValue("unary.fwd", "block", 90, -1));
        assertEquals(256, t.intValue("unary.fwd", "block", 80, -1), "sm_80 falls back to the table");
        assertEquals(4, t.intValue("rmsnorm.fwd", "rows_per_block", 80, -1));
        assertEquals(8, t.intValue("rmsnorm.bwd", "rows_per_block", 90, -1), "other families keep the table");
        assertEquals(77, t.intValue("attention.fwd", "tile", 90, 77), "not in the table: the launcher's default");
        assertTrue(t.wasRead("unary.fwd", "block"));
        assertFalse(t.wasRead("binary.fwd", "block"));
        assertTrue(t.describe().contains("override " + file), t.describe());
    }

    @Test
    void badOverrideFilesAreRefusedWithTheFileLineAndProblem() throws IOException {
        bad("# comment\nunary.fwd block sm_90\n", ":2: expected 'family.pass key arch value', got 3 fields");
        bad("nosuch.fwd block all 256\n", ":1: unknown family 'nosuch.fwd'");
        bad("unary.fwd tile all 256\n", ":1: unary.fwd has no tunable key 'tile' (its keys: block)");
        bad("attention.fwd tile all 64\n", ":1: attention.fwd has no tunable key 'tile' (it has nothing tunable)");
        bad("unary.fwd block all 300\n", ":1: unary.fwd block = 300 is not one of its candidates [128, 256, 512, 1024]");
        bad("unary.fwd block sm90 256\n", ":1: architecture 'sm90' is not 'all' or sm_XY");
        bad("unary.fwd block all -1\n", ":1: value '-1' is not a positive integer");
        bad("unary.fwd block all 256\nunary.fwd block all 512\n", ":2: unary.fwd block all is already set on line 1");
        TuningException e = assertThrows(TuningException.class, () -> Tuning.withOverrideFile(dir.resolve("absent")));
        assertEquals("tuning override " + dir.resolve("absent") + " does not exist", e.getMessage());
    }

    private void bad(String text, String expected) throws IOException {
        Path file = dir.resolve("bad.table");
        Files.writeString(file, text);
        TuningException e = assertThrows(TuningException.class, () -> Tuning.withOverrideFile(file));
        assertTrue(e.getMessage().startsWith(file + expected), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }
}
