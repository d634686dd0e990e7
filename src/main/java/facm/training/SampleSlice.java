package facm.training;

/**
 * Which samples of the global batch a rank trains on: positions [first, first + size) of a global batch of
 * {@code globalBatch}. The objectives index their per-sample randomness (time, noise, label dropout) and the
 * expanded-interval half by the GLOBAL position, so W ranks together draw exactly what one process draws.
 */
public record SampleSlice(int first, int size, int globalBatch) {
    public SampleSlice {
        if (first < 0 || size < 1 || first + size > globalBatch) {
            throw new IllegalArgumentException("sample slice [" + first + ", " + (first + size) + ") is not inside a "
                    + "global batch of " + globalBatch);
        }
    }

    /** The whole batch (single-process training). */
    public static SampleSlice whole(int batch) {
        return new SampleSlice(0, batch, batch);
    }

    /** Rank {@code rank}'s contiguous slice of a global batch split over {@code ranks}. */
    public static SampleSlice ofRank(int rank, int ranks, int globalBatch) {
        int per = globalBatch / ranks;
        return new SampleSlice(rank * per, per, globalBatch);
    }

    public boolean isWhole() {
        return first == 0 && size == globalBatch;
    }
}
