package facm.data;

import facm.checkpoint.CheckpointTensor;
import facm.checkpoint.SafetensorsReader;
import facm.tensor.Shapes;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Pre-extracted VAE latents in the layout of facm-spec.md §2.1: files {@code latents_rank{RR}_shard{SSS}.safetensors},
 * each with {@code latents} (N,C,H,W), {@code latents_flip} (the same images flipped) and {@code labels} (N,) int64.
 * Shards are memory-mapped ({@link SafetensorsReader}) and read in (rank, shard) order; nothing is copied up front.
 *
 * <p>Model space is x = (z − mean) / std per channel (§2.2). The statistics come from {@value #STATS_FILE} in the
 * folder (tensors {@code mean} and {@code std}, shaped (1,C,1,1)). The official {@code latents_stats.pt} of VA-VAE must
 * be converted first: {@code facm convert --in latents_stats.pt --out latents_stats.safetensors}; a folder holding
 * only the .pt is refused rather than silently normalized otherwise. Without either file the statistics are computed
 * over up to 10 000 evenly spaced un-flipped latents (per channel over N,H,W, unbiased std; {@link LatentStats})
 * and {@link #stats()} says so.
 *
 * <p>{@link #readForEpoch} takes {@code latents_flip} instead of {@code latents} with probability ½, per sample and
 * epoch, from {@link EpochRandom#flip}. {@link #read} always gives the un-flipped latent.
 */
public final class LatentShards implements Dataset {
    static final Pattern SHARD_NAME = Pattern.compile("latents_rank(\\d+)_shard(\\d+)\\.safetensors");
    public static final String STATS_FILE = "latents_stats.safetensors";
    static final String OFFICIAL_STATS_FILE = "latents_stats.pt";
    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private record Shard(SafetensorsReader reader, CheckpointTensor latents, CheckpointTensor flipped, int[] labels) {
    }

    private final Path folder;
    private final List<Shard> shards;
    /** Global index of each shard's first sample. */
    private final int[] firstIndex;
    private final int size;
    private final int channels;
    private final int height;
    private final int width;
    private final int numClasses;
    private final float[] mean;
    private final float[] std;
    private final LatentStats stats;

    private LatentShards(Path folder, List<Shard> shards, int[] sampleShape) {
        this.folder = folder;
        this.shards = shards;
        this.channels = sampleShape[0];
        this.height = sampleShape[1];
        this.width = sampleShape[2];
        this.firstIndex = new int[shards.size()];
        long total = 0;
        int maxLabel = 0;
        for (int s = 0; s < shards.size(); s++) {
            firstIndex[s] = (int) total;
            total += shards.get(s).labels.length;
            for (int label : shards.get(s).labels) {
                maxLabel = Math.max(maxLabel, label);
            }
        }
        this.size = (int) total;
        this.numClasses = maxLabel + 1;
        this.stats = loadOrComputeStats();
        this.mean = stats.mean();
        this.std = stats.std();
    }

    // ---------------------------------------------------------------- opening

    /** True when {@code folder} holds at least one file named like a latent shard. */
    static boolean looksLikeShardFolder(Path folder) {
        return !shardFiles(folder).isEmpty();
    }

    /** Shard files of {@code folder} sorted by (rank, shard) numerically. */
    static List<Path> shardFiles(Path folder) {
        try (Stream<Path> files = Files.list(folder)) {
            return files.filter(p -> SHARD_NAME.matcher(p.getFileName().toString()).matches())
                    .sorted(Comparator.comparingLong((Path p) -> shardNumber(p, 1))
                            .thenComparingLong(p -> shardNumber(p, 2)))
                    .toList();
        } catch (IOException e) {
            throw new DataException("cannot list " + folder + ": " + e, e);
        }
    }

    private static long shardNumber(Path p, int group) {
        Matcher m = SHARD_NAME.matcher(p.getFileName().toString());
        if (!m.matches()) {
            throw new IllegalStateException(p.toString());
        }
        String digits = m.group(group);
        return digits.length() > 18 ? Long.MAX_VALUE : Long.parseLong(digits);
    }

    public static LatentShards open(Path folder) {
        if (!Files.isDirectory(folder)) {
            throw new DataException("latent folder " + folder + (Files.exists(folder) ? " is not a folder"
                    : " does not exist"));
        }
        List<Path> files = shardFiles(folder);
        if (files.isEmpty()) {
            throw new DataException("no latent shards in " + folder + ": looked for latents_rank{RR}_shard{SSS}"
                    + ".safetensors");
        }
        if (!Files.isRegularFile(folder.resolve(STATS_FILE)) && Files.exists(folder.resolve(OFFICIAL_STATS_FILE))) {
            throw new DataException(folder + " has " + OFFICIAL_STATS_FILE + " but no " + STATS_FILE
                    + ": convert it first with 'facm convert --in " + folder.resolve(OFFICIAL_STATS_FILE) + " --out "
                    + folder.resolve(STATS_FILE) + "' (or move it away to compute the statistics from the latents)");
        }
        List<Shard> shards = new ArrayList<>();
        try {
            int[] sampleShape = null;
            long total = 0;
            for (Path file : files) {
                Shard shard = openShard(file);
                shards.add(shard);
                int[] shape = shard.latents.shape();
                int[] thisSample = Arrays.copyOfRange(shape, 1, 4);
                if (sampleShape == null) {
                    sampleShape = thisSample;
                } else if (!Arrays.equals(sampleShape, thisSample)) {
                    throw new DataException(file + ": latents are " + Shapes.str(shape) + " but "
                            + files.getFirst().getFileName() + " has samples " + Shapes.str(sampleShape));
                }
                total += shape[0];
            }
            if (total > Integer.MAX_VALUE - 8) {
                throw new DataException(folder + " holds " + total + " latents, more than one data set can index");
            }
            return new LatentShards(folder, shards, sampleShape);
        } catch (RuntimeException e) {
            shards.forEach(s -> s.reader.close());
            throw e;
        }
    }

    private static Shard openShard(Path file) {
        SafetensorsReader reader;
        try {
            reader = SafetensorsReader.open(file);
        } catch (IOException | RuntimeException e) {
            throw new DataException("cannot open latent shard " + file + ": " + e.getMessage(), e);
        }
        try {
            for (String key : List.of("latents", "latents_flip", "labels")) {
                if (!reader.contains(key)) {
                    throw new DataException(file + " has no tensor '" + key + "' (a latent shard holds latents, "
                            + "latents_flip and labels; it has " + reader.names() + ")");
                }
            }
            CheckpointTensor latents = reader.tensor("latents");
            CheckpointTensor flipped = reader.tensor("latents_flip");
            CheckpointTensor labels = reader.tensor("labels");
            int[] shape = latents.shape();
            if (shape.length != 4 || !latents.dtype().isFloating()) {
                throw new DataException(file + ": latents are " + latents.describe()
                        + ", expected a floating (N,C,H,W) tensor");
            }
            if (!Arrays.equals(flipped.shape(), shape) || flipped.dtype() != latents.dtype()) {
                throw new DataException(file + ": latents_flip is " + flipped.describe() + " but latents is "
                        + latents.describe());
            }
            if (labels.shape().length != 1 || labels.shape()[0] != shape[0] || labels.dtype().isFloating()) {
                throw new DataException(file + ": labels are " + labels.describe() + ", expected integers ("
                        + shape[0] + ",) like latents " + Shapes.str(shape));
            }
            int[] values;
            try {
                values = labels.toInts();
            } catch (RuntimeException e) {
                throw new DataException(file + ": " + e.getMessage(), e);
            }
            for (int i = 0; i < values.length; i++) {
                if (values[i] < 0) {
                    throw new DataException(file + ": label " + i + " is negative (" + values[i] + ")");
                }
            }
            return new Shard(reader, latents, flipped, values);
        } catch (RuntimeException e) {
            reader.close();
            throw e;
        }
    }

    // ---------------------------------------------------------------- statistics

    private LatentStats loadOrComputeStats() {
        Path file = folder.resolve(STATS_FILE);
        if (Files.isRegularFile(file)) {
            return LatentStats.load(file, channels);
        }
        return LatentStats.compute((index, dst) -> readRaw(index, false, dst, 0), size, channels, height, width,
                "of " + folder + " (no " + STATS_FILE + ")");
    }

    // ---------------------------------------------------------------- reading

    /** Copies the raw latent (flipped or not) of sample {@code index} into {@code dst}. */
    private void readRaw(int index, boolean flip, float[] dst, int offset) {
        java.util.Objects.checkIndex(index, size);
        int s = shardOf(index);
        Shard shard = shards.get(s);
        CheckpointTensor t = flip ? shard.flipped : shard.latents;
        int len = sampleLength();
        long first = (long) (index - firstIndex[s]) * len;
        MemorySegment data = t.data();
        switch (t.dtype()) {
            case F32 -> MemorySegment.copy(data, F32_LE, first * 4, dst, offset, len);
            default -> {
                for (int i = 0; i < len; i++) {
                    dst[offset + i] = t.floatAt(first + i);
                }
            }
        }
    }

    private int shardOf(int index) {
        int at = Arrays.binarySearch(firstIndex, index);
        if (at >= 0) {
            // several shards may start at the same index when some are empty: take the last, the one holding it
            while (at + 1 < firstIndex.length && firstIndex[at + 1] == index) {
                at++;
            }
            return at;
        }
        return -at - 2;
    }

    private void normalize(float[] dst, int offset) {
        int plane = height * width;
        for (int c = 0; c < channels; c++) {
            float m = mean[c];
            float s = std[c];
            int from = offset + c * plane;
            for (int i = from; i < from + plane; i++) {
                dst[i] = (dst[i] - m) / s;
            }
        }
    }

    @Override
    public void read(int index, float[] dst, int offset) {
        readRaw(index, false, dst, offset);
        normalize(dst, offset);
    }

    @Override
    public void readForEpoch(int index, long seed, long epoch, float[] dst, int offset) {
        readRaw(index, EpochRandom.flip(seed, epoch, index), dst, offset);
        normalize(dst, offset);
    }

    @Override
    public int label(int index) {
        int s = shardOf(index);
        return shards.get(s).labels[index - firstIndex[s]];
    }

    /** The normalization in use (decode with z = x·std + mean) and where it came from, for the run log. */
    public LatentStats stats() {
        return stats;
    }

    public int shardCount() {
        return shards.size();
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public int channels() {
        return channels;
    }

    @Override
    public int height() {
        return height;
    }

    @Override
    public int width() {
        return width;
    }

    /** The largest label + 1 (1000 for ImageNet; fewer when the shards hold only some classes). */
    @Override
    public int numClasses() {
        return numClasses;
    }

    @Override
    public String describe() {
        return "latent shards in " + folder + ": " + size + " latents " + channels + "×" + height + "×" + width
                + " in " + shards.size() + " shard" + (shards.size() == 1 ? "" : "s") + ", " + numClasses
                + " classes, " + stats.source();
    }

    @Override
    public void close() {
        for (Shard s : shards) {
            s.reader.close();
        }
    }
}
