package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.ReduceOp;
import facm.tensor.Shapes;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertWithin;
import static facm.backend.cuda.GpuCpuPair.numel;
import static facm.backend.cuda.GpuCpuPair.values;

/**
 * kernels/reduce.cu and kernels/softmax.cu against the CPU reference, which accumulates in double.
 *
 * <p>Tolerances: MAX is exact. SUM and MEAN accumulate in fp32: each thread adds at most n/32 values in order (for n
 * of 32 or more), then at most 32 partial sums are combined (a tree, or 32 in order for a strided axis), so
 * |error| <= (n/32 + 33) · 2^-24 · Σ|x| over the reduced slice; the test allows 1e-6 · (n/32 + 40) · Σ|x| (a wrong
 * element or a missed term is off by far more). A strided axis split into row slices (reduce_sliced_f32) stays inside
 * that bound: a chain of at most 32 additions a thread, 7 across the thread rows and slices − 1 across the slices
 * (ReductionSliceShapeTest checks the shapes). Softmax: the float
 * x - max and expf give each term a relative error of about |x - max| · 2^-24 + 2 ulp, the fp32 sum and divide a few
 * ulp more; inputs here have |x - max| < 60, so a relative 1e-5 bounds it.
 */
@Tag("gpu")
class CudaReductionTest extends GpuCpuPairTestBase {

    private void checkReduce(int[] shape, int axis) {
        GpuCpuPair.Both x = p.upload("x", values(71 + shape.length + axis, numel(shape), -4f, 4f), shape);
        int ax = Shapes.axis(axis, shape.length);
        int[] outShape = Shapes.without(shape, ax);
        long n = shape[ax];
        // Σ|x| per output element, for the SUM/MEAN bound.
        float[] sumAbs;
        try (Tensor abs = p.cpu.unary(UnaryOp.ABS, x.cpu()); Tensor s = p.cpu.reduce(ReduceOp.SUM, abs, axis)) {
            sumAbs = p.cpu.download(s);
        }
        for (ReduceOp op : ReduceOp.values()) {
            GpuCpuPair.Both out = p.poisoned("out", DType.F32, outShape);
            p.gpu.reduce(op, x.gpu(), axis, out.gpu());
            p.cpu.reduce(op, x.cpu(), axis, out.cpu());
            float[] expected = p.cpu.download(out.cpu());
            float[] actual = p.gpu.download(out.gpu());
            String what = op + " of " + Shapes.str(shape) + " over axis " + axis;
            if (op == ReduceOp.MAX) {
                assertBitEqual(what, expected, actual);
                continue;
            }
            float[] tol = new float[expected.length];
            for (int i = 0; i < tol.length; i++) {
                double bound = 1e-6 * (n / 32.0 + 40) * sumAbs[i];
                tol[i] = (float) (op == ReduceOp.MEAN ? bound / Math.max(1, n) + 1e-7 * Math.abs(expected[i]) : bound);
            }
            assertWithin(what, expected, actual, tol);
            // Deterministic: the same launch gives the same bits.
            GpuCpuPair.Both again = p.poisoned("again", DType.F32, outShape);
            p.gpu.reduce(op, x.gpu(), axis, again.gpu());
            assertBitEqual(what + " run twice", actual, p.gpu.download(again.gpu()));
        }
    }

    @Test
    void reduceEveryAxisOfOddShapes() {
        checkReduce(new int[] {1}, 0);
        for (int axis = -3; axis < 3; axis++) {
            checkReduce(new int[] {3, 37, 5}, axis);
        }
        checkReduce(new int[] {257, 1023}, 0);
        checkReduce(new int[] {257, 1023}, 1);
        checkReduce(new int[] {7, 1, 9}, 1);
    }

    @Test
    void reduceRealisticAndLongAxes() {
        checkReduce(new int[] {64, 256, 1152}, 2);   // per-token statistics over channels
        checkReduce(new int[] {64, 256, 1152}, 1);   // mean over tokens
        checkReduce(new int[] {3, 5000}, 1);         // 256 threads per row
        checkReduce(new int[] {2, 100003}, 1);       // 1024 threads per row
        checkReduce(new int[] {100003, 3}, 0);       // long strided axis, few outputs
    }

    @Test
    void reduceBiasGradientShapedColumns() {
        checkReduce(new int[] {8192, 1152}, 0);      // db of proj / w3 at XL/1 batch 32: 32 row slices
        checkReduce(new int[] {2048, 6144}, 0);      // db of w12 (fewer rows, the CPU reference is slow)
        checkReduce(new int[] {8192, 32}, 0);        // db of the final layer: one column tile, 128 slices
        checkReduce(new int[] {32, 6912}, 0);        // db of an adaLN modulation: one slice, written directly
        checkReduce(new int[] {3, 2049, 40}, 1);     // several outer indices with several slices each
        checkReduce(new int[] {5, 300001, 2}, 1);    // past 128 slices: longer slices
        checkReduce(new int[] {70000, 2, 3}, 1);     // outer · slices past the grid: reduce_strided_f32
    }

    @Test
    void reduceOverAnEmptyAxisGivesZeroNaNAndMinusInfinity() {
        int[] shape = {3, 0, 5};
        GpuCpuPair.Both x = p.upload("x", new float[0], shape);
        for (ReduceOp op : ReduceOp.values()) {
            GpuCpuPair.Both out = p.poisoned("out", DType.F32, 3, 5);
            p.gpu.reduce(op, x.gpu(), 1, out.gpu());
            p.cpu.reduce(op, x.cpu(), 1, out.cpu());
            assertBitEqual(op + " over an empty axis", p.cpu.download(out.cpu()), p.gpu.download(out.gpu()));
        }
    }

    private void checkSoftmax(int rows, int n, boolean inPlace) {
        float[] data = values(81 + n, rows * n, -12f, 12f);
        GpuCpuPair.Both x = p.upload("x", data, rows, n);
        GpuCpuPair.Both out = inPlace ? x : p.poisoned("out", DType.F32, rows, n);
        p.gpu.softmax(x.gpu(), out.gpu());
        p.cpu.softmax(x.cpu(), out.cpu());
        float[] expected = p.cpu.download(out.cpu());
        float[] tol = new float[expected.length];
        for (int i = 0; i < tol.length; i++) {
            tol[i] = 1e-5f * Math.abs(expected[i]) + 1e-30f;
        }
        assertWithin("softmax rows of " + n + (inPlace ? " in place" : ""), expected, p.gpu.download(out.gpu()), tol);
    }

    @Test
    void softmaxOfShortMediumAndLongRows() {
        for (int n : new int[] {1, 31, 256, 1024, 1025, 4097, 20000}) {
            checkSoftmax(n > 4097 ? 3 : 129, n, false);
        }
        checkSoftmax(64, 31, true);
        checkSoftmax(5, 4097, true);
    }

    @Test
    void softmaxOfAttentionShapedScores() {
        int[] shape = {4, 16, 256, 256};
        GpuCpuPair.Both x = p.upload("scores", values(91, numel(shape), -8f, 8f), shape);
        GpuCpuPair.Both out = p.poisoned("probs", DType.F32, shape);
        p.gpu.softmax(x.gpu(), out.gpu());
        p.cpu.softmax(x.cpu(), out.cpu());
        float[] expected = p.cpu.download(out.cpu());
        float[] tol = new float[expected.length];
        for (int i = 0; i < tol.length; i++) {
            tol[i] = 1e-5f * Math.abs(expected[i]) + 1e-30f;
        }
        assertWithin("softmax " + Shapes.str(shape), expected, p.gpu.download(out.gpu()), tol);
    }
}
