package facm.port;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The shipped tuning table parses, and it and the port-check registry name the same families. */
class TuningTableTest {

    @Test
    void builtInTableParsesAndCoversEveryRegisteredFamily() {
        TuningTable table = TuningTable.builtIn();
        Set<String> registered = KernelFamilies.ids();
        List<String> missing = new ArrayList<>(registered);
        missing.removeAll(table.ids());
        assertTrue(missing.isEmpty(), "families without a row in " + TuningTable.RESOURCE + ": " + missing);
        List<String> stale = new ArrayList<>(table.ids());
        stale.removeAll(registered);
        assertTrue(stale.isEmpty(), "rows of " + TuningTable.RESOURCE + " for no registered family: " + stale);
        for (TuningTable.Entry e : table.entries()) {
            if (e.tunable()) {
                assertTrue(e.candidates().contains(e.value()), e.toString());
                assertNotNull(table.lookup(e.id(), e.key(), 90), e.id() + " " + e.key() + " has no row for sm_90");
            }
        }
    }

    @Test
    void blockSizesStayWithinWhatAThreadBlockCanBe() {
        for (TuningTable.Entry e : TuningTable.builtIn().entries()) {
            for (int c : e.candidates()) {
                if (e.key().equals("block")) {
                    assertTrue(c % 32 == 0 && c <= 1024, e.id() + " block candidate " + c);
                } else if (e.key().equals("rows_per_block")) {
                    assertTrue(32 * c <= 256, e.id() + " rows_per_block " + c + " exceeds __launch_bounds__(256)");
                }
            }
        }
    }

    @Test
    void lookupTakesExactThenHighestLowerArchitectureThenAll() {
        TuningTable t = TuningTable.parse("t", """
                unary.fwd  block  all    256  128,256,512
                unary.fwd  block  sm_80  128  128,256,512   # an A100 row
                unary.fwd  block  sm_90  512  128,256,512
                softmax.fwd -     all    -    -    nothing tunable
                """);
        assertEquals(256, t.lookup("unary.fwd", "block", 75).value());
        assertEquals(128, t.lookup("unary.fwd", "block", 80).value());
        assertEquals(128, t.lookup("unary.fwd", "block", 89).value());
        assertEquals(512, t.lookup("unary.fwd", "block", 90).value());
        assertEquals(512, t.lookup("unary.fwd", "block", 120).value());
        assertEquals(List.of("unary.fwd", "softmax.fwd"), t.ids());
        assertEquals(64, Tuning.withOverrides(t, "x", java.util.Map.of()).intValue("softmax.fwd", "block", 90, 64));
    }

    @Test
    void badTableRowsAreOneLineErrorsNamingTheLine() {
        assertBad("t:2: expected 'family.pass key arch value candidates [read by]', got 3 fields",
                "unary.fwd block all 256 128,256\nunary.fwd block all\n");
        assertBad("t:1: 'unary' is not a family id like attention.fwd", "unary block all 256 256\n");
        assertBad("t:1: architecture 'ampere' is not 'all' or sm_XY", "unary.fwd block ampere 256 256\n");
        assertBad("t:1: value 300 of unary.fwd block is not among its candidates [128, 256]",
                "unary.fwd block all 300 128,256\n");
        assertBad("t:1: candidate 'x' is not a positive integer", "unary.fwd block all 256 256,x\n");
        assertBad("t:2: unary.fwd block all is already set on line 1",
                "unary.fwd block all 256 256\nunary.fwd block all 256 256\n");
        assertBad("t:1: a row with key '-' (nothing tunable) needs value and candidates '-'",
                "softmax.fwd - all 32 -\n");
    }

    private static void assertBad(String prefix, String text) {
        TuningException e = assertThrows(TuningException.class, () -> TuningTable.parse("t", text));
        assertTrue(e.getMessage().startsWith(prefix), e.getMessage());
        assertTrue(!e.getMessage().contains("\n"), "one line: " + e.getMessage());
    }
}
