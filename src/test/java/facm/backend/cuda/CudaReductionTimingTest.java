package facm.backend.cuda;

import facm.cuda.CudaDevice;
import facm.cuda.CudaTestSupport;
import facm.tensor.DType;
import facm.tensor.ReduceOp;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * Times the column sums of the training backward's bias gradients (db = Σ_rows dY, dY [B·T, N] at XL/1 batch 32)
 * with the sliced kernel the backend uses and with the single-pass reduce_strided_f32 it replaced, and a linear
 * backward's convert + reduce + axpby of dY against {@link ReductionKernels#sumRows} (the same in one read of dY),
 * and prints them: a report, not a performance gate. The one assertion: the sliced sum run twice gives the same bits.
 */
@Tag("gpu")
class CudaReductionTimingTest {
    private static final int REPEATS = 20;

    private static double micros(CudaDevice device, Runnable launch) {
        return 1000.0 * GpuTiming.millis(device, REPEATS, launch);
    }

    @Test
    void reportBiasGradientSumTimings() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        ReductionKernels kernels = new ReductionKernels(device.kernels(), device.stream());
        int[][] shapes = {{8192, 1152}, {8192, 3456}, {8192, 6144}, {8192, 32}, {32, 6912}, {32, 1152}};
        try (CudaBackend gpu = CudaBackend.on(device)) {
            System.out.println("bias-gradient column sums on " + gpu.describe() + " (µs, GB/s of the input read)");
            for (int[] s : shapes) {
                int rows = s[0], cols = s[1];
                try (Tensor dy = gpu.empty("dY", DType.F32, rows, cols);
                     Tensor sliced = gpu.empty("db sliced", DType.F32, cols);
                     Tensor again = gpu.empty("db again", DType.F32, cols);
                     Tensor strided = gpu.empty("db strided", DType.F32, cols);
                     Tensor db = gpu.zeros(DType.F32, cols);
                     Tensor bf16 = gpu.empty("dY bf16", DType.BF16, rows, cols)) {
                    gpu.randomNormal(dy, 7 + cols, 0);
                    long x = ((CudaTensor) dy).address();
                    double tSliced = micros(device, () -> gpu.reduce(ReduceOp.SUM, dy, 0, sliced));
                    double tStrided = micros(device, () -> kernels.reduceStrided(ReduceOp.SUM, x,
                            ((CudaTensor) strided).address(), 1, rows, cols));
                    // A linear's backward as LinearLayer runs it (convert, reduce, axpby) and fused in one read.
                    double tSeparate = micros(device, () -> {
                        gpu.convert(dy, bf16);
                        gpu.reduce(ReduceOp.SUM, dy, 0, sliced);
                        gpu.axpby(1f, db, 1f, sliced, db);
                    });
                    double tFused = micros(device, () -> kernels.sumRows(x, ((CudaTensor) bf16).address(),
                            ((CudaTensor) db).address(), rows, cols, true));
                    System.out.printf(Locale.ROOT, "  [%5d, %4d]  convert + reduce + axpby %8.1f µs   fused sumRows"
                            + " %8.1f µs%n", rows, cols, tSeparate, tFused);
                    gpu.reduce(ReduceOp.SUM, dy, 0, again);
                    assertArrayEquals(gpu.download(sliced), gpu.download(again), "[" + rows + ", " + cols + "]");
                    double gb = (double) rows * cols * Float.BYTES / 1e9;
                    System.out.printf(Locale.ROOT, "  [%5d, %4d]  sliced %8.1f µs %7.0f GB/s   strided %8.1f µs %7.0f"
                                    + " GB/s   (slices of %d rows)%n", rows, cols, tSliced, gb / (tSliced * 1e-6),
                            tStrided, gb / (tStrided * 1e-6), ReductionKernels.sliceRows(1, rows, cols));
                }
            }
        }
    }
}
