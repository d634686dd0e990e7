package facm.backend.cpu;

import static facm.backend.cpu.ReferenceData.assertWithin;
import static facm.backend.cpu.ReferenceData.assertWithinUlps;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.nonZero;
import static facm.backend.cpu.ReferenceData.numel;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.tensor.DType;
import facm.tensor.ReduceOp;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class CpuReductionTest {
    private static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    /**
     * SUM and MEAN accumulate in float64, so the only error is the final rounding plus float64 summation error
     * (len · 2^-53 · Σ|x|); the tolerance is one float ulp plus 1e-12 · Σ|x|. MAX is exact.
     */
    @Test
    void reduceEveryAxisMatchesFloat64() {
        int[][] shapes = {{3, 37, 5}, {1}, {129, 257}, {3, 1100}, {2, 3, 600}};
        long seed = 1;
        for (int[] shape : shapes) {
            float[] x = nonZero(seed++, numel(shape));
            Tensor tx = CPU.upload("x", x, shape);
            for (int axis = -shape.length; axis < shape.length; axis++) {
                int ax = Shapes.axis(axis, shape.length);
                int outer = (int) Shapes.outer(shape, ax);
                int len = shape[ax];
                int inner = (int) Shapes.inner(shape, ax);
                int[] outShape = Shapes.without(shape, ax);
                for (ReduceOp op : ReduceOp.values()) {
                    double[] expected = new double[outer * inner];
                    double[] tolerance = new double[outer * inner];
                    for (int o = 0; o < outer; o++) {
                        for (int i = 0; i < inner; i++) {
                            double sum = 0;
                            double abs = 0;
                            double max = Double.NEGATIVE_INFINITY;
                            for (int k = 0; k < len; k++) {
                                double v = x[(o * len + k) * inner + i];
                                sum += v;
                                abs += Math.abs(v);
                                max = Math.max(max, v);
                            }
                            double e = switch (op) {
                                case SUM -> sum;
                                case MEAN -> sum / len;
                                case MAX -> max;
                            };
                            expected[o * inner + i] = e;
                            tolerance[o * inner + i] = op == ReduceOp.MAX ? 0
                                    : Math.ulp((float) e) + 1e-12 * abs;
                        }
                    }
                    Tensor out = CPU.upload("out", nans(outer * inner), outShape);
                    CPU.reduce(op, tx, axis, out);
                    assertWithin(op + " axis " + axis + " of " + Arrays.toString(shape), expected,
                            CPU.download(out), tolerance);
                }
            }
        }
    }

    @Test
    void sumKeepsPrecisionThatFloatAccumulationLoses() {
        // 1 + 2^20 values of 2^-24: a float accumulator stays at 1, float64 gives 1.0625.
        int n = (1 << 20) + 1;
        float[] x = new float[n];
        Arrays.fill(x, 0x1p-24f);
        x[0] = 1f;
        Tensor s = CPU.reduce(ReduceOp.SUM, CPU.upload("x", x, n), 0);
        assertEquals(1.0625f, CPU.download(s)[0], 0f);
    }

    @Test
    void defaultReduceAllocatesTheRightShape() {
        Tensor out = CPU.reduce(ReduceOp.MAX, CPU.upload("x", new float[] {1, 5, 3, 4, 2, 6}, 2, 3), -1);
        assertArrayEquals(new int[] {2}, out.shape());
        assertArrayEquals(new float[] {5, 6}, CPU.download(out));
    }

    @Test
    void reduceErrorsNameTheOp() {
        Tensor x = CPU.empty("x", DType.F32, 4, 5);
        ShapeException wrongOut = assertThrows(ShapeException.class,
                () -> CPU.reduce(ReduceOp.SUM, x, 0, CPU.empty("o", DType.F32, 4)));
        assertTrue(wrongOut.getMessage().contains("reduce SUM") && wrongOut.getMessage().contains("o f32[4] cpu")
                && wrongOut.getMessage().contains("[5]"), wrongOut.getMessage());
        ShapeException badAxis = assertThrows(ShapeException.class,
                () -> CPU.reduce(ReduceOp.MEAN, x, 2, CPU.empty(DType.F32, 4)));
        assertTrue(badAxis.getMessage().contains("x f32[4,5] cpu"), badAxis.getMessage());
        assertThrows(ShapeException.class, () -> CPU.reduce(ReduceOp.MAX, x, -3, CPU.empty(DType.F32, 4)));
        assertThrows(ShapeException.class,
                () -> CPU.reduce(ReduceOp.SUM, CPU.empty(DType.F32, 20, 7), 1, CPU.empty(DType.I32, 20)));
        // out may not be a view of x: the reduction would read values it already overwrote.
        Tensor square = CPU.empty("sq", DType.F32, 4, 4);
        Tensor flat = square.reshape(16);
        ShapeException sharing = assertThrows(ShapeException.class,
                () -> CPU.reduce(ReduceOp.SUM, square.reshape(16, 1), 1, flat));
        assertTrue(sharing.getMessage().contains("share"), sharing.getMessage());
    }

    /** Softmax in float64 rounded once: within one float ulp of the exact value. */
    @Test
    void softmaxMatchesFloat64() {
        long seed = 50;
        for (int[] shape : ReferenceData.ODD_SHAPES) {
            int n = numel(shape);
            float[] x = nonZero(seed++, n);
            for (int i = 0; i < n; i++) {
                x[i] *= 8f;
            }
            int cols = shape[shape.length - 1];
            double[] expected = softmaxReference(x, cols);
            Tensor out = CPU.upload("out", nans(n), shape);
            CPU.softmax(CPU.upload("x", x, shape), out);
            assertWithinUlps("softmax " + Arrays.toString(shape), expected, CPU.download(out), 1.0);
        }
    }

    @Test
    void softmaxIsStableForLargeLogitsAndMayWriteInPlace() {
        float[] x = {1000f, 1001f, 999f, -1000f, -1001f, -999f};
        Tensor t = CPU.upload("x", x, 2, 3);
        CPU.softmax(t, t);
        float[] got = CPU.download(t);
        double[] expected = softmaxReference(x, 3);
        assertWithinUlps("softmax large logits", expected, got, 1.0);
        assertEquals(1.0, got[0] + got[1] + got[2], 1e-6);
    }

    @Test
    void softmaxErrors() {
        ShapeException e = assertThrows(ShapeException.class,
                () -> CPU.softmax(CPU.empty("x", DType.F32, 2, 3), CPU.empty("y", DType.F32, 3, 2)));
        assertTrue(e.getMessage().contains("softmax") && e.getMessage().contains("y f32[3,2] cpu"), e.getMessage());
        assertThrows(ShapeException.class, () -> CPU.softmax(CPU.empty(DType.BF16, 2, 3)));
    }

    private static double[] softmaxReference(float[] x, int cols) {
        double[] r = new double[x.length];
        for (int row = 0; row < x.length / cols; row++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) {
                max = Math.max(max, x[row * cols + c]);
            }
            double sum = 0;
            for (int c = 0; c < cols; c++) {
                sum += Math.exp(x[row * cols + c] - max);
            }
            for (int c = 0; c < cols; c++) {
                r[row * cols + c] = Math.exp(x[row * cols + c] - max) / sum;
            }
        }
        return r;
    }
}
