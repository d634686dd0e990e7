package facm.data;

import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;

/**
 * Endless shuffled batches of a {@link Dataset}, prepared on a background thread while the caller trains.
 *
 * <p>Epoch e visits the samples in the order {@link EpochRandom#permutation}(seed, e, N) and yields ⌊N/B⌋ batches
 * of B (drop_last: the N mod B samples left at the end of an epoch are skipped). The loader's position is a cursor
 * e·⌊N/B⌋·B + offset in that sequence; after k batches from position 0 it is k·B, the number of samples consumed.
 * Every batch is a pure function of (dataset, B, seed, position), so a loader created with the position saved in a
 * checkpoint yields exactly the batches an uninterrupted one would have (same B and dataset; with another B it
 * continues from the same sample count, in other batches).
 *
 * <p>Sharding (data-parallel training): with {@code shards} W &gt; 1 the batch size B is the GLOBAL batch; the
 * epochs, positions and batches are those of the single-process loader, and shard r yields only the contiguous slice
 * [r·B/W, (r+1)·B/W) of each global batch (B must be a multiple of W). The W shards together read exactly what one
 * process would, so training on W ranks sees the samples of training on one.
 *
 * <p>The prefetch thread keeps up to {@value #PREFETCH_BATCHES} batches ready. An exception on it reaches the caller
 * at {@link #next()} (and every later call), as a {@link DataException} naming the position. {@link #close()} stops
 * it; the dataset stays open (it belongs to the caller).
 */
public final class BatchLoader implements AutoCloseable {
    static final int PREFETCH_BATCHES = 2;
    private static final long JOIN_MILLIS = 10_000;

    private final Dataset dataset;
    private final int batchSize;
    private final long seed;
    private final long samplesPerEpoch;
    private final int shard;
    private final int shardSize;
    private final BlockingQueue<Object> ready = new ArrayBlockingQueue<>(PREFETCH_BATCHES);
    private final Thread prefetch;
    private volatile boolean closed;
    private long position;
    private DataException failure;

    /** A failure on the prefetch thread, queued in order with the batches. */
    private record Failure(long position, Throwable cause) {
    }

    public BatchLoader(Dataset dataset, int batchSize, long seed, long startPosition) {
        this(dataset, batchSize, seed, startPosition, 0, 1);
    }

    /** Shard {@code shard} of {@code shards} of the loader over global batches of {@code batchSize}. */
    public BatchLoader(Dataset dataset, int batchSize, long seed, long startPosition, int shard, int shards) {
        if (shards < 1 || shard < 0 || shard >= shards) {
            throw new IllegalArgumentException("shard " + shard + " of " + shards + " does not exist");
        }
        if (batchSize % shards != 0) {
            throw new IllegalArgumentException("the global batch " + batchSize + " does not split evenly over " + shards
                    + " ranks (choose a batch that is a multiple of the number of ranks)");
        }
        this.shard = shard;
        this.shardSize = batchSize / shards;
        this.dataset = Objects.requireNonNull(dataset, "dataset");
        if (batchSize < 1) {
            throw new IllegalArgumentException("batch size must be positive, got " + batchSize);
        }
        if (startPosition < 0) {
            throw new IllegalArgumentException("start position must be >= 0, got " + startPosition);
        }
        if (dataset.size() < batchSize) {
            throw new DataException(dataset.describe() + ": " + dataset.size() + " samples are fewer than one batch of "
                    + batchSize + " (incomplete batches are dropped)");
        }
        this.batchSize = batchSize;
        this.seed = seed;
        this.samplesPerEpoch = (long) (dataset.size() / batchSize) * batchSize;
        this.position = startPosition;
        this.prefetch = Thread.ofPlatform().daemon().name("facm-batch-prefetch").unstarted(() -> produce(startPosition));
        prefetch.start();
    }

    /** The next batch, waiting for the prefetch thread when it is behind. */
    public Batch next() {
        if (closed) {
            throw new IllegalStateException("the batch loader over " + dataset.describe() + " is closed");
        }
        if (failure != null) {
            throw failure;
        }
        Object item;
        try {
            item = ready.take();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a batch at position " + position, e);
        }
        if (item instanceof Failure f) {
            String why = f.cause instanceof DataException ? f.cause.getMessage() : f.cause.toString();
            failure = new DataException("loading the batch at position " + f.position + " failed: " + why, f.cause);
            throw failure;
        }
        Batch batch = (Batch) item;
        position = batch.positionAfter();
        return batch;
    }

    /** The cursor after the last batch {@link #next()} returned (the start position before the first). */
    public long position() {
        return position;
    }

    /** The epoch the next batch belongs to. */
    public long epoch() {
        return cursorAt(position)[0];
    }

    /** The global batch size B. */
    public int batchSize() {
        return batchSize;
    }

    /** Samples per batch this loader yields: B / shards. */
    public int shardSize() {
        return shardSize;
    }

    /** Index of this shard's first sample within the global batch: shard · B / shards. */
    public int shardStart() {
        return shard * shardSize;
    }

    public long batchesPerEpoch() {
        return samplesPerEpoch / batchSize;
    }

    public Dataset dataset() {
        return dataset;
    }

    /**
     * {epoch, offset} of the batch that starts at {@code cursor}: an offset too close to the epoch's end for a whole
     * batch (only possible for a position saved with another batch size) moves on to the next epoch.
     */
    private long[] cursorAt(long cursor) {
        long epoch = cursor / samplesPerEpoch;
        long offset = cursor % samplesPerEpoch;
        if (offset + batchSize > samplesPerEpoch) {
            epoch++;
            offset = 0;
        }
        return new long[] {epoch, offset};
    }

    // ---------------------------------------------------------------- prefetch thread

    private void produce(long cursor) {
        long permutationEpoch = -1;
        int[] order = null;
        while (!closed) {
            try {
                long[] at = cursorAt(cursor);
                long epoch = at[0];
                int offset = (int) at[1];
                if (epoch != permutationEpoch) {
                    order = EpochRandom.permutation(seed, epoch, dataset.size());
                    permutationEpoch = epoch;
                }
                long after = epoch * samplesPerEpoch + offset + batchSize;
                Batch batch = assemble(order, offset, epoch, after);
                ready.put(batch);
                cursor = after;
            } catch (InterruptedException e) {
                return; // close()
            } catch (Throwable t) {
                try {
                    ready.put(new Failure(cursor, t));
                } catch (InterruptedException e) {
                    // closing anyway
                }
                return;
            }
        }
    }

    private Batch assemble(int[] order, int offset, long epoch, long positionAfter) {
        int len = dataset.sampleLength();
        float[] images = new float[Math.multiplyExact(shardSize, len)];
        int[] labels = new int[shardSize];
        int[] indices = new int[shardSize];
        for (int i = 0; i < shardSize; i++) {
            int index = order[offset + shardStart() + i];
            dataset.readForEpoch(index, seed, epoch, images, i * len);
            int label = dataset.label(index);
            if (label < 0 || label >= dataset.numClasses()) {
                throw new DataException(dataset.describe() + ": sample " + index + " has label " + label
                        + ", outside 0.." + (dataset.numClasses() - 1));
            }
            labels[i] = label;
            indices[i] = index;
        }
        int[] shape = {shardSize, dataset.channels(), dataset.height(), dataset.width()};
        return new Batch(images, shape, labels, positionAfter, indices);
    }

    /** Stops the prefetch thread (waiting for a read in progress to finish) and drops prepared batches. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        prefetch.interrupt();
        try {
            prefetch.join(JOIN_MILLIS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        ready.clear();
    }
}
