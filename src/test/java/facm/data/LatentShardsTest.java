package facm.data;

import facm.checkpoint.SafetensorsWriter;
import facm.checkpoint.SafetensorsWriter.Entry;
import facm.tensor.Bf16;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LatentShardsTest {
    static final int C = 2;
    static final int H = 2;
    static final int W = 3;
    static final int LEN = C * H * W;

    @TempDir
    Path dir;

    /** Raw latent value of global sample g, element e; the flipped copy is its negation minus 100. */
    static float z(int g, int e) {
        return (float) Math.sin(g * 1.7 + e * 0.31) * (e < H * W ? 2f : 0.5f) + (e < H * W ? 3f : -1f);
    }

    static float zFlip(int g, int e) {
        return -z(g, e) - 100f;
    }

    /** Writes a shard holding global samples first..first+n-1 with labels 3·g mod 7. */
    static void writeShard(Path file, int first, int n, boolean bf16) throws IOException {
        float[] latents = new float[n * LEN];
        float[] flipped = new float[n * LEN];
        long[] labels = new long[n];
        for (int i = 0; i < n; i++) {
            for (int e = 0; e < LEN; e++) {
                latents[i * LEN + e] = z(first + i, e);
                flipped[i * LEN + e] = zFlip(first + i, e);
            }
            labels[i] = 3L * (first + i) % 7;
        }
        int[] shape = {n, C, H, W};
        Entry a = bf16 ? Entry.bf16("latents", shape, bits(latents)) : Entry.f32("latents", shape, latents);
        Entry b = bf16 ? Entry.bf16("latents_flip", shape, bits(flipped)) : Entry.f32("latents_flip", shape, flipped);
        SafetensorsWriter.write(file, List.of(a, b, Entry.i64("labels", new int[] {n}, labels)), Map.of());
    }

    private static short[] bits(float[] v) {
        short[] out = new short[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = Bf16.fromFloat(v[i]);
        }
        return out;
    }

    /** Shards in an order that sorts wrongly as text (shard 10 after shard 2; rank 1 last). */
    void writeThreeShards() throws IOException {
        writeShard(dir.resolve("latents_rank00_shard002.safetensors"), 0, 3, false);
        writeShard(dir.resolve("latents_rank00_shard10.safetensors"), 3, 2, false);
        writeShard(dir.resolve("latents_rank01_shard000.safetensors"), 5, 4, false);
    }

    @Test
    void normalizesWithTheStatsFileAndKeepsShardOrder() throws IOException {
        writeThreeShards();
        float[] mean = {3.5f, -1.25f};
        float[] std = {2f, 0.5f};
        SafetensorsWriter.write(dir.resolve(LatentShards.STATS_FILE), List.of(
                Entry.f32("mean", new int[] {1, C, 1, 1}, mean), Entry.f32("std", new int[] {1, C, 1, 1}, std)),
                Map.of());
        try (LatentShards d = LatentShards.open(dir)) {
            assertEquals(9, d.size());
            assertEquals(3, d.shardCount());
            assertArrayEquals(new int[] {C, H, W}, d.sampleShape());
            assertEquals(7, d.numClasses(), "largest label 6 + 1");
            assertArrayEquals(mean, d.stats().mean());
            assertTrue(d.describe().contains("mean/std from " + dir.resolve(LatentShards.STATS_FILE)), d.describe());
            float[] x = new float[LEN + 1];
            for (int g = 0; g < 9; g++) {
                assertEquals(3 * g % 7, d.label(g));
                d.read(g, x, 1);
                for (int e = 0; e < LEN; e++) {
                    int c = e / (H * W);
                    assertEquals((z(g, e) - mean[c]) / std[c], x[1 + e], "sample " + g + " element " + e);
                }
            }
        }
    }

    @Test
    void flipChoiceIsPerSampleAndEpochAndDeterministic() throws IOException {
        writeThreeShards();
        try (LatentShards d = LatentShards.open(dir)) {
            float[] mean = d.stats().mean();
            float[] std = d.stats().std();
            float[] x = new float[LEN];
            int flippedCount = 0;
            for (long epoch = 0; epoch < 8; epoch++) {
                for (int g = 0; g < 9; g++) {
                    boolean flip = EpochRandom.flip(77, epoch, g);
                    flippedCount += flip ? 1 : 0;
                    d.readForEpoch(g, 77, epoch, x, 0);
                    for (int e = 0; e < LEN; e++) {
                        int c = e / (H * W);
                        float raw = flip ? zFlip(g, e) : z(g, e);
                        assertEquals((raw - mean[c]) / std[c], x[e], "epoch " + epoch + " sample " + g);
                    }
                }
            }
            assertTrue(flippedCount > 18 && flippedCount < 54, "both copies are used: " + flippedCount + " of 72");
        }
    }

    @Test
    void computesUnbiasedStatsWhenThereIsNoStatsFile() throws IOException {
        writeThreeShards();
        try (LatentShards d = LatentShards.open(dir)) {
            int plane = H * W;
            for (int c = 0; c < C; c++) {
                double sum = 0;
                for (int g = 0; g < 9; g++) {
                    for (int i = 0; i < plane; i++) {
                        sum += z(g, c * plane + i);
                    }
                }
                int n = 9 * plane;
                double mu = sum / n;
                double sq = 0;
                for (int g = 0; g < 9; g++) {
                    for (int i = 0; i < plane; i++) {
                        double dlt = z(g, c * plane + i) - mu;
                        sq += dlt * dlt;
                    }
                }
                assertEquals(mu, d.stats().mean()[c], 1e-6);
                assertEquals(Math.sqrt(sq / (n - 1)), d.stats().std()[c], 1e-6);
            }
            assertTrue(d.stats().source().contains("computed over 9 un-flipped latents"), d.stats().source());
        }
    }

    @Test
    void readsBf16Latents() throws IOException {
        writeShard(dir.resolve("latents_rank00_shard000.safetensors"), 0, 2, true);
        try (LatentShards d = LatentShards.open(dir)) {
            float[] x = new float[LEN];
            d.read(1, x, 0);
            for (int e = 0; e < LEN; e++) {
                int c = e / (H * W);
                float raw = Bf16.toFloat(Bf16.fromFloat(z(1, e)));
                assertEquals((raw - d.stats().mean()[c]) / d.stats().std()[c], x[e]);
            }
        }
    }

    @Test
    void badStatsFilesAreRefused() throws IOException {
        writeThreeShards();
        Path stats = dir.resolve(LatentShards.STATS_FILE);
        SafetensorsWriter.write(stats, List.of(Entry.f32("mean", new int[] {1, 3, 1, 1}, new float[3]),
                Entry.f32("std", new int[] {1, 3, 1, 1}, new float[] {1, 1, 1})), Map.of());
        DataException channels = assertThrows(DataException.class, () -> LatentShards.open(dir));
        assertTrue(channels.getMessage().contains("with 2 channels"), channels.getMessage());
        SafetensorsWriter.write(stats, List.of(Entry.f32("mean", new int[] {1, C, 1, 1}, new float[C]),
                Entry.f32("std", new int[] {1, C, 1, 1}, new float[] {1, 0})), Map.of());
        DataException zero = assertThrows(DataException.class, () -> LatentShards.open(dir));
        assertTrue(zero.getMessage().contains("channel 1 has mean 0.0 and std 0.0")
                && zero.getMessage().contains(stats.toString()), zero.getMessage());
        SafetensorsWriter.write(stats, List.of(Entry.f32("mean", new int[] {1, C, 1, 1}, new float[C])), Map.of());
        DataException missing = assertThrows(DataException.class, () -> LatentShards.open(dir));
        assertTrue(missing.getMessage().contains("no tensor 'std'"), missing.getMessage());
    }

    @Test
    void refusesTheUnconvertedOfficialStatsFile() throws IOException {
        writeThreeShards();
        Files.write(dir.resolve("latents_stats.pt"), new byte[] {1, 2, 3});
        DataException e = assertThrows(DataException.class, () -> LatentShards.open(dir));
        assertTrue(e.getMessage().contains("convert it first") && e.getMessage().contains("facm convert --in"),
                e.getMessage());
    }

    @Test
    void malformedShardsNameTheFileAndTheProblem() throws IOException {
        Path file = dir.resolve("latents_rank00_shard000.safetensors");
        SafetensorsWriter.write(file, List.of(Entry.f32("latents", new int[] {1, C, H, W}, new float[LEN])),
                Map.of());
        DataException missing = assertThrows(DataException.class, () -> LatentShards.open(dir));
        assertTrue(missing.getMessage().contains(file.toString())
                && missing.getMessage().contains("no tensor 'latents_flip'"), missing.getMessage());

        SafetensorsWriter.write(file, List.of(
                Entry.f32("latents", new int[] {2, C, H, W}, new float[2 * LEN]),
                Entry.f32("latents_flip", new int[] {2, C, H, W}, new float[2 * LEN]),
                Entry.i64("labels", new int[] {3}, new long[3])), Map.of());
        DataException count = assertThrows(DataException.class, () -> LatentShards.open(dir));
        assertTrue(count.getMessage().contains("labels are"), count.getMessage());

        writeShard(file, 0, 2, false);
        SafetensorsWriter.write(dir.resolve("latents_rank00_shard001.safetensors"), List.of(
                Entry.f32("latents", new int[] {1, C, W, H}, new float[LEN]),
                Entry.f32("latents_flip", new int[] {1, C, W, H}, new float[LEN]),
                Entry.i64("labels", new int[] {1}, new long[1])), Map.of());
        DataException shape = assertThrows(DataException.class, () -> LatentShards.open(dir));
        assertTrue(shape.getMessage().contains("shard001") && shape.getMessage().contains("[1,2,3,2]"),
                shape.getMessage());

        Files.write(dir.resolve("latents_rank00_shard001.safetensors"), new byte[] {9, 9});
        DataException corrupt = assertThrows(DataException.class, () -> LatentShards.open(dir));
        assertTrue(corrupt.getMessage().contains("cannot open latent shard"), corrupt.getMessage());
    }

    @Test
    void worksUnderTheBatchLoader() throws IOException {
        writeThreeShards();
        try (LatentShards d = LatentShards.open(dir); BatchLoader loader = new BatchLoader(d, 4, 1, 0)) {
            Batch b = loader.next();
            assertArrayEquals(new int[] {4, C, H, W}, b.shape());
            float[] x = new float[LEN];
            for (int i = 0; i < 4; i++) {
                d.readForEpoch(b.indices()[i], 1, 0, x, 0);
                assertArrayEquals(x, java.util.Arrays.copyOfRange(b.images(), i * LEN, (i + 1) * LEN));
            }
        }
    }
}
