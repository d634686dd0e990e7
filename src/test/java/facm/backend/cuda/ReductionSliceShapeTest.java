package facm.backend.cuda;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The launch shapes of reduce_sliced_f32 ({@link ReductionKernels#sliceRows}), on the CPU: whole thread rows per
 * slice, a grid that fits, enough blocks for the bias-gradient shapes, and per-output addition chains inside the
 * fp32 error bound that CudaReductionTest allows (n/32 + 40 additions).
 */
class ReductionSliceShapeTest {

    private static void checkShape(long outer, long n, long inner) {
        long rows = ReductionKernels.sliceRows(outer, n, inner);
        String what = "[" + outer + ", " + n + ", " + inner + "] in slices of " + rows + " rows";
        if (rows == 0) {
            return; // reduce_strided_f32 takes it
        }
        assertEquals(0, rows % ReductionKernels.SLICE_THREAD_ROWS, what + ": whole thread rows");
        long slices = (n + rows - 1) / rows;
        assertTrue(slices >= 1 && slices <= ReductionKernels.MAX_SLICES, what + ": slices " + slices);
        assertTrue((slices - 1) * rows < n, what + ": an empty slice");
        assertTrue(outer * slices <= 65535, what + ": grid y " + outer * slices);
        long chain = (rows + ReductionKernels.SLICE_THREAD_ROWS - 1) / ReductionKernels.SLICE_THREAD_ROWS
                + (ReductionKernels.SLICE_THREAD_ROWS - 1) + (slices - 1);
        assertTrue(n < 32 || chain <= n / 32.0 + 40, what + ": " + chain + " additions in a row");
    }

    @Test
    void shapesStayInsideTheGridAndTheErrorBound() {
        long[] lengths = {1, 2, 7, 8, 9, 31, 32, 63, 64, 65, 255, 256, 257, 1000, 4096, 8192, 8193, 32768, 32769,
                100003, 1_000_000};
        long[] widths = {2, 3, 31, 32, 33, 72, 1152, 3456, 6144, 6912, 40_000};
        for (long n : lengths) {
            for (long inner : widths) {
                for (long outer : new long[] {1, 3, 64, 5000, 70000}) {
                    checkShape(outer, n, inner);
                }
            }
        }
    }

    @Test
    void biasGradientsOfXlFillTheGpu() {
        for (long cols : new long[] {1152, 3456, 4608, 6144}) {
            long rows = ReductionKernels.sliceRows(1, 8192, cols);
            long blocks = (cols + 31) / 32 * ((8192 + rows - 1) / rows);
            assertTrue(blocks >= 1000, cols + " columns: only " + blocks + " blocks (slices of " + rows + " rows)");
        }
        assertEquals(32, ReductionKernels.sliceRows(1, 32, 6912), "an adaLN modulation's 32 rows: one slice");
    }
}
