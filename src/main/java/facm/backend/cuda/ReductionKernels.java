package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.DeviceBuffer;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.tensor.ReduceOp;

import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * Launchers for kernels/reduce.cu and kernels/softmax.cu. The launch shape depends only on the sizes, never on the
 * device or on timing, because it fixes the order of the fp32 additions: same input, same bits.
 */
final class ReductionKernels {
    /** Blocks beyond this are not needed: the kernels stride over rows (or tiles) with the grid. */
    private static final int MAX_BLOCKS = 1 << 20;
    private static final int THREADS_PER_BLOCK = 256;
    /** reduce_sliced_f32's block: 32 inner positions × SLICE_THREAD_ROWS thread rows (kernels/reduce.cu). */
    static final int SLICE_THREAD_ROWS = 8;
    /** Slices are at most this many rows (32 additions a thread), which also bounds the fp32 error of a long axis. */
    static final int MAX_SLICE_ROWS = 256;
    /** ... and at least this many, unless the axis is shorter: shorter slices only add partials to sum. */
    static final int MIN_SLICE_ROWS = 64;
    /** Enough blocks to keep every SM of an H100/H200 busy several times over; a constant, never the device's. */
    static final int TARGET_SLICED_BLOCKS = 1024;
    /** At most this many slices (the second pass adds them in order). */
    static final int MAX_SLICES = 128;
    /** gridDim.y limit of a launch. */
    private static final int MAX_GRID_Y = 65535;

    private final CudaStream stream;
    private final Kernel reduceRows;
    private final Kernel reduceStrided;
    private final Kernel reduceSliced;
    private final Kernel reduceSlices;
    private final Kernel softmax;

    ReductionKernels(KernelLibrary lib, CudaStream stream) {
        this.stream = stream;
        reduceRows = lib.kernel("reduce_rows_f32", I32, PTR, PTR, I64, I64);
        reduceStrided = lib.kernel("reduce_strided_f32", I32, PTR, PTR, I64, I64, I64);
        reduceSliced = lib.kernel("reduce_sliced_f32", I32, PTR, PTR, I64, I64, I64, I64, PTR, I32);
        reduceSlices = lib.kernel("reduce_slices_f32", I32, PTR, PTR, I64, I64, I64, I64, I32);
        softmax = lib.kernel("softmax_fwd", PTR, PTR, I64, I64);
    }

    /**
     * Threads sharing one row of length n: a warp for rows up to 1024 (a few loads per lane), a block for longer
     * rows so that one row does not serialize on 32 lanes. A multiple of 32, at most 1024.
     */
    static int threadsPerRow(long n) {
        if (n <= 1024) {
            return 32;
        }
        return n <= 8192 ? 256 : 1024;
    }

    /** Reduces x viewed as [outer, n, inner] over n into out viewed as [outer, inner]. */
    void reduce(ReduceOp op, long x, long out, long outer, long n, long inner) {
        if (outer == 0 || inner == 0) {
            return;
        }
        if (inner == 1) {
            int tx = threadsPerRow(n);
            int ty = Math.max(1, THREADS_PER_BLOCK / tx);
            int blocks = blocks(outer, ty);
            reduceRows.launch(stream, blocks, 1, 1, tx, ty, 1, 0, op.ordinal(), x, out, outer, n);
            return;
        }
        long sliceRows = sliceRows(outer, n, inner);
        if (sliceRows > 0) {
            reduceSliced(op, x, 0L, out, false, outer, n, inner, sliceRows);
            return;
        }
        reduceStrided(op, x, out, outer, n, inner);
    }

    /**
     * reduce_strided_f32 (the path for a grid reduce_sliced_f32 cannot take, and the before of the timing report):
     * 32 inner positions per block; thread rows split the reduced axis (fewer rows for a short axis).
     */
    void reduceStrided(ReduceOp op, long x, long out, long outer, long n, long inner) {
        int ty = (int) Math.min(32, Math.max(1, Long.highestOneBit(Math.max(1, n))));
        long tiles = outer * ((inner + 31) / 32);
        int blocks = (int) Math.min(tiles, MAX_BLOCKS);
        reduceStrided.launch(stream, blocks, 1, 1, 32, ty, 1, 0, op.ordinal(), x, out, outer, n, inner);
    }

    /**
     * Rows per slice of reduce_sliced_f32 for a [outer, n, inner] reduction (inner > 1), or 0 where the grid would
     * not fit (the caller then uses reduce_strided_f32): slices of {@value #MIN_SLICE_ROWS} to {@value
     * #MAX_SLICE_ROWS} rows (more only past {@value #MAX_SLICES} slices), as many as it takes to reach {@value
     * #TARGET_SLICED_BLOCKS} blocks, a multiple of the thread rows. Sizes only, so the order of additions is fixed.
     */
    static long sliceRows(long outer, long n, long inner) {
        if (n == 0) {
            return 0;
        }
        long tiles = (inner + 31) / 32;
        long forBlocks = ceilDiv(TARGET_SLICED_BLOCKS, Math.min(tiles * outer, TARGET_SLICED_BLOCKS));
        long slices = Math.max(ceilDiv(n, MAX_SLICE_ROWS), Math.min(forBlocks, ceilDiv(n, MIN_SLICE_ROWS)));
        slices = Math.max(1, Math.min(slices, MAX_SLICES));
        long rows = ceilDiv(ceilDiv(n, slices), SLICE_THREAD_ROWS) * SLICE_THREAD_ROWS;
        slices = ceilDiv(n, rows);
        if (tiles > Integer.MAX_VALUE || outer * slices > MAX_GRID_Y) {
            return 0;
        }
        return rows;
    }

    /**
     * The bias gradient of a linear layer from its output gradient dY [rows, cols] in one read of dY: out = Σ_rows dY
     * (accumulate: out += Σ_rows dY, the same fp32 add as a separate axpby of the sum), and, when {@code bf16Copy} is
     * not 0, bf16Copy [rows, cols] = bf16(dY), the operand of the backward's bf16 GEMMs (the bits of a convert). The
     * sum is the one {@link #reduce} gives for SUM over axis 0: same slices, same order, same bits. rows > 0.
     */
    void sumRows(long x, long bf16Copy, long out, long rows, long cols, boolean accumulate) {
        long sliceRows = sliceRows(1, rows, cols);
        if (rows <= 0 || cols <= 0 || sliceRows == 0) {
            throw new IllegalArgumentException("sumRows: no sliced launch for dY [" + rows + ", " + cols + "]");
        }
        reduceSliced(ReduceOp.SUM, x, bf16Copy, out, accumulate, 1, rows, cols, sliceRows);
    }

    /**
     * Pass 1 over (32-wide inner tiles) × (outer index, row slice); with several slices their partial results go to
     * a scratch buffer from the device arena (stream-ordered reuse, so it can go back right after the launches;
     * inside a graph capture it comes from the graph's pool) and pass 2 adds them in slice order.
     */
    private void reduceSliced(ReduceOp op, long x, long bf16Copy, long out, boolean accumulate, long outer, long n,
                              long inner, long sliceRows) {
        long slices = ceilDiv(n, sliceRows);
        int tiles = (int) ((inner + 31) / 32);
        int gridY = (int) (outer * slices);
        int acc = accumulate ? 1 : 0;
        if (slices == 1) {
            reduceSliced.launch(stream, tiles, gridY, 1, 32, SLICE_THREAD_ROWS, 1, 0, op.ordinal(), x, out, outer, n,
                    inner, sliceRows, bf16Copy, acc);
            return;
        }
        long bytes = outer * slices * inner * Float.BYTES;
        try (DeviceBuffer partials = stream.device().arena().allocate(bytes, "reduce " + op + " partials of ["
                + outer + ", " + n + ", " + inner + "] in " + slices + " slices")) {
            reduceSliced.launch(stream, tiles, gridY, 1, 32, SLICE_THREAD_ROWS, 1, 0, op.ordinal(), x,
                    partials.address(), outer, n, inner, sliceRows, bf16Copy, 0);
            reduceSlices.launch1d(stream, outer * inner, THREADS_PER_BLOCK, op.ordinal(), partials.address(), out,
                    outer, slices, inner, n, acc);
        }
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    /** Softmax over rows of length n (n > 0); out may be x. */
    void softmax(long x, long out, long rows, long n) {
        if (rows == 0 || n == 0) {
            return;
        }
        int tx = threadsPerRow(n);
        int ty = Math.max(1, THREADS_PER_BLOCK / tx);
        softmax.launch(stream, blocks(rows, ty), 1, 1, tx, ty, 1, 0, x, out, rows, n);
    }

    private static int blocks(long rows, int rowsPerBlock) {
        return (int) Math.max(1, Math.min((rows + rowsPerBlock - 1) / rowsPerBlock, MAX_BLOCKS));
    }
}
