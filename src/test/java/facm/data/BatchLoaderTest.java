package facm.data;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BatchLoaderTest {

    /** Sample i is [i, -i] in a 2×1×1 layout with label i mod 3; {@code readForEpoch} adds 1000·epoch. */
    static final class Counting implements Dataset {
        final int n;
        final int failAt;

        Counting(int n, int failAt) {
            this.n = n;
            this.failAt = failAt;
        }

        @Override
        public int size() {
            return n;
        }

        @Override
        public int channels() {
            return 2;
        }

        @Override
        public int height() {
            return 1;
        }

        @Override
        public int width() {
            return 1;
        }

        @Override
        public int numClasses() {
            return 3;
        }

        @Override
        public void read(int index, float[] dst, int offset) {
            if (index == failAt) {
                throw new DataException("sample " + index + " is unreadable");
            }
            dst[offset] = index;
            dst[offset + 1] = -index;
        }

        @Override
        public void readForEpoch(int index, long seed, long epoch, float[] dst, int offset) {
            read(index, dst, offset);
            dst[offset] += 1000 * epoch;
        }

        @Override
        public int label(int index) {
            return index % 3;
        }

        @Override
        public String describe() {
            return "counting " + n;
        }
    }

    private static List<Batch> take(Dataset d, int batch, long seed, long start, int count) {
        List<Batch> out = new ArrayList<>();
        try (BatchLoader loader = new BatchLoader(d, batch, seed, start)) {
            for (int i = 0; i < count; i++) {
                out.add(loader.next());
                assertEquals(out.getLast().positionAfter(), loader.position());
            }
        }
        return out;
    }

    private static void assertSameBatches(List<Batch> a, List<Batch> b) {
        assertEquals(a.size(), b.size());
        for (int i = 0; i < a.size(); i++) {
            assertArrayEquals(a.get(i).indices(), b.get(i).indices(), "batch " + i);
            assertArrayEquals(a.get(i).images(), b.get(i).images(), "batch " + i);
            assertArrayEquals(a.get(i).labels(), b.get(i).labels(), "batch " + i);
            assertEquals(a.get(i).positionAfter(), b.get(i).positionAfter(), "batch " + i);
        }
    }

    @Test
    void batchesHoldTheSamplesTheyName() {
        Counting d = new Counting(10, -1);
        List<Batch> batches = take(d, 3, 7, 0, 7);
        Set<Integer> epoch0 = new HashSet<>();
        for (int k = 0; k < batches.size(); k++) {
            Batch b = batches.get(k);
            assertArrayEquals(new int[] {3, 2, 1, 1}, b.shape());
            assertEquals(3L * (k + 1), b.positionAfter(), "position counts samples consumed");
            long epoch = k / 3; // 10 samples, batch 3: 3 batches per epoch, one sample dropped
            for (int i = 0; i < 3; i++) {
                int index = b.indices()[i];
                assertEquals(index + 1000f * epoch, b.images()[2 * i]);
                assertEquals(-index, b.images()[2 * i + 1]);
                assertEquals(index % 3, b.labels()[i]);
                if (epoch == 0) {
                    epoch0.add(index);
                }
            }
        }
        assertEquals(9, epoch0.size(), "an epoch visits distinct samples");
    }

    @Test
    void sameSeedSameBatchesOtherSeedOthers() {
        Counting d = new Counting(50, -1);
        assertSameBatches(take(d, 8, 42, 0, 12), take(d, 8, 42, 0, 12));
        List<Batch> a = take(d, 8, 42, 0, 6);
        List<Batch> b = take(d, 8, 43, 0, 6);
        assertFalse(Arrays.equals(a.getFirst().indices(), b.getFirst().indices()));
    }

    @Test
    void resumingAtAnySavedPositionRepeatsTheUninterruptedRun() {
        Counting d = new Counting(23, -1);
        int batch = 5; // 4 batches per epoch, 3 samples dropped each epoch
        List<Batch> uninterrupted = take(d, batch, 9, 0, 14);
        for (int k = 0; k < 10; k++) {
            long saved = uninterrupted.get(k).positionAfter();
            List<Batch> resumed = take(d, batch, 9, saved, 4);
            assertSameBatches(uninterrupted.subList(k + 1, k + 5), resumed);
        }
        try (BatchLoader loader = new BatchLoader(d, batch, 9, 20)) {
            assertEquals(1, loader.epoch());
            assertEquals(4, loader.batchesPerEpoch());
        }
    }

    @Test
    void positionFromAnotherBatchSizeContinuesWithoutError() {
        Counting d = new Counting(10, -1);
        List<Batch> b = take(d, 4, 1, 7, 3); // 8 samples per epoch; offset 7 has no room for 4: next epoch
        assertEquals(12, b.get(0).positionAfter());
        assertEquals(16, b.get(1).positionAfter());
        assertEquals(20, b.get(2).positionAfter());
        assertEquals(1000f, b.get(0).images()[0] - b.get(0).indices()[0], "first batch is from epoch 1");
    }

    @Test
    void epochsArePermutationsThatDiffer() {
        int n = 100;
        int[] e0 = EpochRandom.permutation(5, 0, n);
        int[] e1 = EpochRandom.permutation(5, 1, n);
        assertArrayEquals(e0, EpochRandom.permutation(5, 0, n), "a pure function of (seed, epoch)");
        assertFalse(Arrays.equals(e0, e1));
        int[] sorted = e0.clone();
        Arrays.sort(sorted);
        for (int i = 0; i < n; i++) {
            assertEquals(i, sorted[i]);
        }
        // every index lands first about equally often over many epochs (expected 500 each)
        int[] first = new int[4];
        for (int e = 0; e < 2000; e++) {
            first[EpochRandom.permutation(11, e, 4)[0]]++;
        }
        for (int count : first) {
            assertTrue(count > 400 && count < 600, Arrays.toString(first));
        }
        int flips = 0;
        for (int i = 0; i < 10_000; i++) {
            flips += EpochRandom.flip(3, 2, i) ? 1 : 0;
        }
        assertTrue(flips > 4800 && flips < 5200, "flip is a fair coin: " + flips);
    }

    @Test
    void failuresOnThePrefetchThreadSurfaceOnNext() {
        Counting d = new Counting(10, 4);
        try (BatchLoader loader = new BatchLoader(d, 10, 0, 0)) {
            DataException e = assertThrows(DataException.class, loader::next);
            assertTrue(e.getMessage().contains("position 0") && e.getMessage().contains("sample 4 is unreadable"),
                    e.getMessage());
            assertSame(e, assertThrows(DataException.class, loader::next), "the failure is sticky");
        }
    }

    @Test
    void closeStopsThePrefetchThreadAndNextFailsAfterwards() throws InterruptedException {
        BatchLoader loader = new BatchLoader(new Counting(10, -1), 2, 0, 0);
        loader.next();
        loader.close();
        loader.close();
        assertThrows(IllegalStateException.class, loader::next);
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().equals("facm-batch-prefetch")) {
                t.join(5000);
                assertFalse(t.isAlive(), "prefetch thread still running after close");
            }
        }
    }

    @Test
    void badArgumentsAreRefused() {
        Counting d = new Counting(3, -1);
        DataException small = assertThrows(DataException.class, () -> new BatchLoader(d, 4, 0, 0));
        assertTrue(small.getMessage().contains("fewer than one batch of 4"), small.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new BatchLoader(d, 0, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new BatchLoader(d, 1, 0, -1));
    }

    @Test
    void batchWithoutDatasetHasUnknownIndices() {
        Batch b = new Batch(new float[2], new int[] {2, 1, 1, 1}, new int[] {0, 1}, 2);
        assertArrayEquals(new int[] {-1, -1}, b.indices());
        assertNotEquals(0, b.size());
    }
}
