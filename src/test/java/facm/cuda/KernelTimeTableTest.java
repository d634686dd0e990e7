package facm.cuda;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The profile's aggregation and table with injected timings: no GPU. */
class KernelTimeTableTest {

    /** Two runs of: 3 gemms of 2 ms, 4 rmsnorms of 0.25 ms, 1 softmax of 0.5 ms; wall 20 ms over both runs. */
    private static KernelTimeTable twoRuns() {
        KernelTimeTable t = new KernelTimeTable();
        for (int run = 0; run < 2; run++) {
            for (int i = 0; i < 3; i++) {
                t.add("gemm 8192x3456x1152 bf16->bf16 NT bias", 2.0);
            }
            for (int i = 0; i < 4; i++) {
                t.add("rms_norm_modulate_bf16", 0.25);
            }
            t.add("softmax_f32", 0.5);
        }
        t.wall("cuda:0 Test GPU", 20.0);
        return t;
    }

    @Test
    void aggregatesPerLabelSortedByTotal() {
        KernelTimeTable t = twoRuns();
        assertEquals(16, t.launches());
        assertEquals(12 + 2 + 1, t.sumMs(), 1e-12);
        assertEquals(20.0, t.wallMs(), 0);
        List<KernelTimeTable.Row> rows = t.rows();
        assertEquals(3, rows.size());
        assertEquals("gemm 8192x3456x1152 bf16->bf16 NT bias", rows.get(0).label());
        assertEquals(6, rows.get(0).calls());
        assertEquals(12.0, rows.get(0).totalMs(), 1e-12);
        assertEquals(2000.0, rows.get(0).meanMicros(), 1e-9);
        assertEquals("rms_norm_modulate_bf16", rows.get(1).label());
        assertEquals(8, rows.get(1).calls());
        assertEquals(250.0, rows.get(1).meanMicros(), 1e-9);
        assertEquals("softmax_f32", rows.get(2).label());
    }

    @Test
    void formatsPerRunAveragesWithTheRestFolded() {
        String s = twoRuns().format(2, 2);
        assertTrue(s.contains("per run, averaged over 2 runs"), s);
        assertTrue(s.contains("16 launches, 3 labels; sum of kernel times 7.500 ms"), s);
        // wall 20 ms / 2 runs; kernels 15 of 20 ms; the rest (20 - 15) / 2.
        assertTrue(s.contains("wall from first to last event on cuda:0 Test GPU: 10.000 ms (kernels 75.0 %, the rest "
                + "2.500 ms"), s);
        assertTrue(s.matches("(?s).*\\n +6\\.000 +80\\.0% +3 +2000\\.0  gemm 8192x3456x1152 bf16->bf16 NT bias\\n.*"),
                s);
        assertTrue(s.matches("(?s).*\\n +1\\.000 +13\\.3% +4 +250\\.0  rms_norm_modulate_bf16\\n.*"), s);
        assertTrue(s.matches("(?s).*\\n +0\\.500 +6\\.7% +1 +\\(1 more labels\\)\\n"), s);
        assertFalse(s.contains("softmax_f32"), s);
        assertFalse(s.contains("not timed"), s);
    }

    @Test
    void totalsAndUnevenCallCounts() {
        KernelTimeTable t = twoRuns();
        t.add("softmax_f32", 0.5); // 3 softmax calls over 2 runs: 1.5 per run
        String totals = t.format(10, 1);
        assertTrue(totals.contains("totals"), totals);
        assertTrue(totals.matches("(?s).*\\n +1\\.500 +.*% +3 +500\\.0  softmax_f32\\n.*"), totals);
        String perRun = t.format(10, 2);
        assertTrue(perRun.matches("(?s).*\\n +0\\.750 +.*% +1\\.5 +500\\.0  softmax_f32\\n.*"), perRun);
    }

    @Test
    void saysWhatWasNotTimedAndWhenNothingWas() {
        KernelTimeTable t = twoRuns();
        t.notTimed(5, 0, 1);
        assertTrue(t.format(5, 1).contains("not timed: 5 launched inside a graph capture, 0 past the record limit, "
                + "1 without an end event"));
        String empty = new KernelTimeTable().format(5, 1);
        assertTrue(empty.contains("0 launches") && empty.contains("nothing was timed"), empty);
        assertTrue(Double.isNaN(new KernelTimeTable().wallMs()));
    }

    @Test
    void rejectsBadEntriesAndArguments() {
        KernelTimeTable t = new KernelTimeTable();
        assertThrows(IllegalArgumentException.class, () -> t.add(null, 1));
        assertThrows(IllegalArgumentException.class, () -> t.add("k", Double.NaN));
        assertThrows(IllegalArgumentException.class, () -> t.add("k", -1));
        assertThrows(IllegalArgumentException.class, () -> t.format(0, 1));
        assertThrows(IllegalArgumentException.class, () -> t.format(1, 0));
    }

    @Test
    void theProfileIsOffByDefaultAndRecordsNothingThen() {
        // The build runs tests without -Dfacm.cuda.kernelProfile; off, begin() returns before touching the stream.
        assertFalse(KernelProfile.on());
        assertEquals(KernelProfile.NOT_RECORDED, KernelProfile.begin(null));
        KernelProfile.end(KernelProfile.NOT_RECORDED, null, "never recorded");
    }
}
