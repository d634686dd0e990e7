package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.ReduceOp;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertWithin;
import static facm.backend.cuda.GpuCpuPair.values;

/**
 * {@link ReductionKernels#sumRows}, the fused bias-gradient sum of a linear's backward (db += Σ_rows dY, and bf16(dY)
 * from the same read): the bf16 copy is the convert's to the bit, the sum equals the GPU's own reduce SUM over axis
 * 0 followed by axpby to the bit (same slices, same order, the same fp32 add), and both are within the tolerance
 * of CudaReductionTest of the CPU reference (reduce in double, then the f32 add).
 */
@Tag("gpu")
class CudaBiasGradientSumTest extends GpuCpuPairTestBase {
    private ReductionKernels kernels;

    @Override
    void opened() {
        kernels = new ReductionKernels(p.gpu.cudaDevice().kernels(), p.gpu.cudaDevice().stream());
    }

    @ParameterizedTest(name = "dY [{0}, {1}] copy {2} accumulate {3}")
    @CsvSource({"8192, 1152, true, true", "2048, 6144, true, true", "32, 6912, true, true", "8192, 32, true, false",
            "7, 40, true, true", "1000, 3, false, true", "300, 70, false, false", "1, 5, true, true"})
    void fusedSumMatchesReduceAxpbyAndTheConvert(int rows, int cols, boolean copy, boolean accumulate) {
        GpuCpuPair.Both dy = p.upload("dY", values(31 + cols, rows * cols, -3f, 3f), rows, cols);
        float[] start = values(32 + rows, cols, -1f, 1f);
        GpuCpuPair.Both db = p.upload("db", start, cols);
        GpuCpuPair.Both dbSeparate = p.upload("db separate", start, cols);
        GpuCpuPair.Both bf16 = p.poisoned("dY bf16", DType.BF16, rows, cols);
        GpuCpuPair.Both sum = p.poisoned("sum", DType.F32, cols);
        String what = "sumRows of dY [" + rows + ", " + cols + "]" + (accumulate ? " into db" : "");

        kernels.sumRows(address(dy.gpu()), copy ? address(bf16.gpu()) : 0L, address(db.gpu()), rows, cols,
                accumulate);
        // The unfused GPU path and the CPU reference: reduce, then db += sum (or db = sum).
        p.gpu.reduce(ReduceOp.SUM, dy.gpu(), 0, sum.gpu());
        p.cpu.reduce(ReduceOp.SUM, dy.cpu(), 0, sum.cpu());
        if (accumulate) {
            p.gpu.axpby(1f, dbSeparate.gpu(), 1f, sum.gpu(), dbSeparate.gpu());
            p.cpu.axpby(1f, dbSeparate.cpu(), 1f, sum.cpu(), dbSeparate.cpu());
        } else {
            p.gpu.copy(sum.gpu(), dbSeparate.gpu());
            p.cpu.copy(sum.cpu(), dbSeparate.cpu());
        }
        float[] fused = p.gpu.download(db.gpu());
        assertBitEqual(what + " vs reduce + axpby on the GPU", p.gpu.download(dbSeparate.gpu()), fused);

        float[] expected = p.cpu.download(dbSeparate.cpu());
        float[] sumAbs;
        try (Tensor abs = p.cpu.unary(UnaryOp.ABS, dy.cpu()); Tensor s = p.cpu.reduce(ReduceOp.SUM, abs, 0)) {
            sumAbs = p.cpu.download(s);
        }
        float[] tol = new float[cols];
        for (int i = 0; i < cols; i++) {
            tol[i] = (float) (1e-6 * (rows / 32.0 + 40) * (sumAbs[i] + Math.abs(start[i])));
        }
        assertWithin(what + " vs the CPU", expected, fused, tol);

        if (copy) {
            p.cpu.convert(dy.cpu(), bf16.cpu());
            assertBitEqual(what + ": bf16 copy vs the CPU's convert", p.cpu.download(bf16.cpu()),
                    p.gpu.download(bf16.gpu()));
        }
        // Deterministic: run twice, same bits.
        GpuCpuPair.Both again = p.upload("db again", start, cols);
        kernels.sumRows(address(dy.gpu()), 0L, address(again.gpu()), rows, cols, accumulate);
        assertBitEqual(what + " run twice", fused, p.gpu.download(again.gpu()));
    }

    /** The Backend op the linear backward calls: CUDA's one-pass form equals the interface's default on the GPU. */
    @ParameterizedTest(name = "linearBiasGradient dY [{0}, {1}] copy {2}")
    @CsvSource({"8192, 1152, true", "32, 6912, true", "37, 5, false"})
    void backendOpMatchesTheDefaultSequence(int rows, int cols, boolean copy) {
        GpuCpuPair.Both dy = p.upload("dY", values(41 + cols, rows * cols, -3f, 3f), rows, cols);
        float[] start = values(42 + rows, cols, -1f, 1f);
        GpuCpuPair.Both db = p.upload("db", start, cols);
        GpuCpuPair.Both dbDefault = p.upload("db default", start, cols);
        GpuCpuPair.Both bf16 = p.poisoned("dY bf16", DType.BF16, rows, cols);
        GpuCpuPair.Both bf16Default = p.poisoned("dY bf16 default", DType.BF16, rows, cols);
        p.gpu.linearBiasGradient(dy.gpu(), copy ? bf16.gpu() : null, db.gpu());
        if (copy) {
            p.gpu.convert(dy.gpu(), bf16Default.gpu());
        }
        try (Tensor sum = p.gpu.reduce(ReduceOp.SUM, dy.gpu(), 0)) {
            p.gpu.axpby(1f, dbDefault.gpu(), 1f, sum, dbDefault.gpu());
        }
        String what = "linearBiasGradient dY [" + rows + ", " + cols + "]";
        assertBitEqual(what + " bias vs convert/reduce/axpby", p.gpu.download(dbDefault.gpu()),
                p.gpu.download(db.gpu()));
        if (copy) {
            assertBitEqual(what + " bf16 copy vs convert", p.gpu.download(bf16Default.gpu()),
                    p.gpu.download(bf16.gpu()));
        }
    }

    private static long address(Tensor t) {
        return ((CudaTensor) t).address();
    }
}
