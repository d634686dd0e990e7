package facm.backend.cuda;

import facm.cuda.CudaStream;
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

    private final CudaStream stream;
    private final Kernel reduceRows;
    private final Kernel reduceStrided;
    private final Kernel softmax;

    ReductionKernels(KernelLibrary lib, CudaStream stream) {
        this.stream = stream;
        reduceRows = lib.kernel("reduce_rows_f32", I32, PTR, PTR, I64, I64);
        reduceStrided = lib.kernel("reduce_strided_f32", I32, PTR, PTR, I64, I64, I64);
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
        // 32 inner positions per block; thread rows split the reduced axis (fewer rows for a short axis).
        int ty = (int) Math.min(32, Math.max(1, Long.highestOneBit(Math.max(1, n))));
        long tiles = outer * ((inner + 31) / 32);
        int blocks = (int) Math.min(tiles, MAX_BLOCKS);
        reduceStrided.launch(stream, blocks, 1, 1, 32, ty, 1, 0, op.ordinal(), x, out, outer, n, inner);
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
