package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;

import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * The deterministic parameter-gradient reductions of the backward ops: the rows that contribute to a parameter are cut
 * into fixed segments (chosen from the shape alone), a per-op kernel writes one column-sum row per segment into
 * scratch, and {@code partials_sum_accumulate} (kernels/rmsnorm.cu) adds the segment rows in order into the gradient.
 * No atomics, so a gradient is bit-identical from run to run.
 */
final class PartialSums {
    /** Block of the partials kernels and of the finishing kernel: 32 columns × 8 thread rows. */
    static final int COLUMNS_PER_BLOCK = 32;
    static final int THREAD_ROWS = 8;
    /** Rows per segment when there are enough: 8 per thread row. */
    private static final int SEGMENT_ROWS = 64;
    /** Upper bound on segments (scratch = segments × columns floats per partial kind, and the finishing pass). */
    private static final int MAX_SEGMENTS = 4096;
    private static final int MAX_GRID_Y = 65_535;

    /**
     * How {@code batches × tokens} rows are cut: runs of {@code length} rows inside one batch element,
     * {@code perBatch} of them per element (the last one shorter), {@code count} in all.
     */
    record Segments(int length, int perBatch, int count) {
        /** Grid y of a partials launch (segments are grid-strided beyond it). */
        int gridY() {
            return Math.min(count, MAX_GRID_Y);
        }
    }

    private final CudaStream stream;
    private final Kernel accumulate;

    PartialSums(KernelLibrary lib, CudaStream stream) {
        this.stream = stream;
        this.accumulate = lib.kernel("partials_sum_accumulate", PTR, I64, PTR, I64, I32, I32, I32);
    }

    /** Segments for {@code batches} groups of {@code tokens} rows each (both >= 1). Depends on the shape only. */
    static Segments segments(int batches, int tokens) {
        long rows = (long) batches * tokens;
        int length = (int) Math.max(SEGMENT_ROWS, (rows + MAX_SEGMENTS - 1) / MAX_SEGMENTS);
        length = Math.min(length, tokens);
        int perBatch = (tokens + length - 1) / length;
        long count = (long) batches * perBatch;
        if (count > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("PartialSums: " + batches + " batches of " + tokens
                    + " rows need too many segments");
        }
        return new Segments(length, perBatch, (int) count);
    }

    /** Grid x of a partials launch over {@code columns} columns. */
    static int gridX(int columns) {
        return (columns + COLUMNS_PER_BLOCK - 1) / COLUMNS_PER_BLOCK;
    }

    /**
     * out[g·outGroupStride + c] += Σ_{k < perGroup} partials[(g·perGroup + k)·partialStride + c] for g < groups,
     * c < cols, summed in k order (addresses in bytes of float arrays; strides in floats).
     */
    void accumulate(long partials, long partialStride, long out, long outGroupStride, int groups, int perGroup,
                    int cols) {
        if (groups == 0 || cols == 0 || perGroup == 0) {
            return;
        }
        accumulate.launch(stream, gridX(cols), Math.min(groups, MAX_GRID_Y), 1, COLUMNS_PER_BLOCK, THREAD_ROWS, 1, 0,
                partials, partialStride, out, outGroupStride, groups, perGroup, cols);
    }
}
