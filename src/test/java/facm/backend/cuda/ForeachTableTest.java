package facm.backend.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** The foreach table's layout (kernels/foreach.cuh reads it): entries, first blocks, the block search. CPU only. */
class ForeachTableTest {
    private static final long CHUNK = 2048;

    @Test
    void entriesHoldAddressesCountsAndBlocksAndEmptyTensorsAreLeftOut() {
        long[][] addresses = {{0x1000, 0x2000}, {0x3000, 0x4000}, {0x5000, 0x6000}, {0x7000, 0x8000}};
        long[] counts = {1, 0, 2049, 4096};
        ForeachTable t = ForeachTable.build("test", addresses, counts, ForeachTable.chunks(CHUNK));
        assertEquals(3, t.entries());
        assertEquals(1 + 2 + 2, t.blocks());
        long[] expected = {
            0x1000, 0x2000, 0, 0, 1, 1,
            0x5000, 0x6000, 0, 0, 2049, 2,
            0x7000, 0x8000, 0, 0, 4096, 2,
            0, 1, 3, 5};
        assertArrayEquals(expected, t.words());
    }

    @Test
    void everyBlockFindsTheEntryThatOwnsIt() {
        long[] counts = {7, 1, 65537, 0, 1152L * 1152, 2048, 2049, 3};
        long[][] addresses = new long[counts.length][];
        for (int i = 0; i < counts.length; i++) {
            addresses[i] = new long[] {0x10000L * (i + 1)};
        }
        ForeachTable t = ForeachTable.build("test", addresses, counts, ForeachTable.chunks(CHUNK));
        long block = 0;
        int e = 0;
        for (long n : counts) {
            if (n == 0) {
                continue;
            }
            long blocks = (n + CHUNK - 1) / CHUNK;
            assertEquals(block, t.firstBlock(e), "first block of entry " + e);
            for (long b = block; b < block + blocks; b++) {
                assertEquals(e, t.entryOf(b), "entry of block " + b);
            }
            block += blocks;
            e++;
        }
        assertEquals(block, t.blocks());
    }

    @Test
    void sumOfSquaresTablesKeepEachTensorsOwnGrid() {
        long[] counts = {1, 2048, 2049, 1152L * 1152, 3L * 1152 * 1152 + 7};
        long[][] addresses = new long[counts.length][];
        for (int i = 0; i < counts.length; i++) {
            addresses[i] = new long[] {0x100L * (i + 1)};
        }
        ForeachTable t = ForeachTable.build("test", addresses, counts, CudaTrainingOps::sumBlocks);
        long total = 0;
        for (int e = 0; e < counts.length; e++) {
            long blocks = t.words()[e * ForeachTable.FIELDS + ForeachTable.BLOCKS];
            assertEquals(CudaTrainingOps.sumBlocks(counts[e]), blocks, "blocks of tensor " + e);
            assertEquals(total, t.firstBlock(e));
            total += blocks;
        }
        assertEquals(1024, CudaTrainingOps.sumBlocks(3L * 1152 * 1152 + 7), "the per-tensor grid cap applies");
        assertEquals(total, t.blocks());
    }

    @Test
    void int32WordsAreLowWordFirst() {
        ForeachTable t = ForeachTable.build("test", new long[][] {{0x1234_5678_9abc_def0L}}, new long[] {5},
                ForeachTable.chunks(CHUNK));
        int[] w = t.int32Words();
        assertEquals(2 * t.words().length, w.length);
        assertEquals(0x9abc_def0, w[0]);
        assertEquals(0x1234_5678, w[1]);
        assertEquals(5, w[2 * ForeachTable.COUNT]);
    }

    @Test
    void emptyListsAndAllEmptyTensorsLaunchNothing() {
        assertEquals(0, ForeachTable.build("test", new long[0][], new long[0], ForeachTable.chunks(CHUNK)).blocks());
        ForeachTable t = ForeachTable.build("test", new long[][] {{1}, {2}}, new long[] {0, 0},
                ForeachTable.chunks(CHUNK));
        assertEquals(0, t.entries());
        assertEquals(0, t.blocks());
    }

    @Test
    void badInputsAreRejectedWithTheOpName() {
        var e = assertThrows(IllegalArgumentException.class, () -> ForeachTable.build("adamwForeach",
                new long[][] {{1, 2}, {3}}, new long[] {1, 1}, ForeachTable.chunks(CHUNK)));
        assertEquals(true, e.getMessage().startsWith("adamwForeach: tensor 1 has 1 addresses"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ForeachTable.build("t", new long[][] {{1, 2, 3, 4, 5}},
                new long[] {1}, ForeachTable.chunks(CHUNK)));
        assertThrows(IllegalArgumentException.class, () -> ForeachTable.build("t", new long[][] {{1}},
                new long[] {1, 2}, ForeachTable.chunks(CHUNK)));
        assertThrows(IllegalArgumentException.class, () -> ForeachTable.build("t", new long[][] {{1}, {2}},
                new long[] {Long.MAX_VALUE / 2, Long.MAX_VALUE / 4}, n -> n));
    }
}
