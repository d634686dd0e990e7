package facm.backend.cpu;

import static facm.backend.cpu.ReferenceData.assertWithinUlps;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.nonZero;
import static facm.backend.cpu.ReferenceData.numel;
import static facm.backend.cpu.ReferenceData.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class CpuElementwiseTest {
    private static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    /** The exact function in float64. */
    private static double unaryReference(UnaryOp op, double x) {
        return switch (op) {
            case NEG -> -x;
            case ABS -> Math.abs(x);
            case EXP -> Math.exp(x);
            case LOG -> Math.log(x);
            case SQRT -> Math.sqrt(x);
            case RSQRT -> 1.0 / Math.sqrt(x);
            case SQUARE -> x * x;
            case SIGMOID -> 1.0 / (1.0 + Math.exp(-x));
            case SILU -> x / (1.0 + Math.exp(-x));
            case TANH -> Math.tanh(x);
            case COS -> Math.cos(x);
            case SIN -> Math.sin(x);
        };
    }

    @Test
    void unaryOpsMatchFloat64WithinOneUlp() {
        long seed = 10;
        for (UnaryOp op : UnaryOp.values()) {
            for (int[] shape : ReferenceData.ODD_SHAPES) {
                int n = numel(shape);
                boolean positiveOnly = op == UnaryOp.LOG || op == UnaryOp.SQRT || op == UnaryOp.RSQRT;
                float[] x = positiveOnly ? uniform(seed++, n, 0.01, 50) : uniform(seed++, n, -12, 12);
                double[] expected = new double[n];
                for (int i = 0; i < n; i++) {
                    expected[i] = unaryReference(op, x[i]);
                }
                Tensor in = CPU.upload("x", x, shape);
                Tensor out = CPU.upload("out", nans(n), shape);
                CPU.unary(op, in, out);
                assertWithinUlps(op + " " + Arrays.toString(shape), expected, CPU.download(out), 1.0);
            }
        }
    }

    @Test
    void unaryEdgeValues() {
        Tensor x = CPU.upload("x", new float[] {-200f, 200f, 0f, Float.NaN}, 4);
        assertArrayEquals(new float[] {0f, 1f, 0.5f, Float.NaN}, CPU.download(CPU.unary(UnaryOp.SIGMOID, x)));
        float[] silu = CPU.download(CPU.unary(UnaryOp.SILU, x));
        assertEquals(0f, silu[0], 0f);
        assertEquals(200f, silu[1], 0f);
        assertArrayEquals(new float[] {Float.NaN, (float) Math.log(200), Float.NEGATIVE_INFINITY, Float.NaN},
                CPU.download(CPU.unary(UnaryOp.LOG, x)));
        assertEquals(Float.POSITIVE_INFINITY, CPU.download(CPU.unary(UnaryOp.RSQRT, x))[2]);
    }

    @Test
    void unaryMayWriteInPlace() {
        float[] x = uniform(3, 1000, -3, 3);
        Tensor t = CPU.upload("x", x, 1000);
        CPU.unary(UnaryOp.TANH, t, t);
        float[] got = CPU.download(t);
        for (int i = 0; i < x.length; i++) {
            assertEquals((float) Math.tanh(x[i]), got[i], 0f);
        }
    }

    private static double binaryReference(BinaryOp op, double a, double b) {
        return switch (op) {
            case ADD -> a + b;
            case SUB -> a - b;
            case MUL -> a * b;
            case DIV -> a / b;
            case MAX -> Math.max(a, b);
            case MIN -> Math.min(a, b);
        };
    }

    /** One float operation is exactly rounded, so the result must equal the float64 value rounded to float. */
    @Test
    void binaryOpsWithSameShapeSuffixAndScalarB() {
        long seed = 100;
        for (BinaryOp op : BinaryOp.values()) {
            for (int[] shape : ReferenceData.ODD_SHAPES) {
                int n = numel(shape);
                int[][] bShapes = {shape, Arrays.copyOfRange(shape, shape.length - 1, shape.length), {1}, {}};
                for (int[] bShape : bShapes) {
                    int bn = numel(bShape);
                    float[] a = nonZero(seed++, n);
                    float[] b = nonZero(seed++, bn);
                    double[] expected = new double[n];
                    for (int i = 0; i < n; i++) {
                        expected[i] = (float) binaryReference(op, a[i], b[i % bn]);
                    }
                    Tensor out = CPU.upload("out", nans(n), shape);
                    CPU.binary(op, CPU.upload("a", a, shape), CPU.upload("b", b, bShape), out);
                    assertWithinUlps(op + " a" + Arrays.toString(shape) + " b" + Arrays.toString(bShape), expected,
                            CPU.download(out), 0.0);
                }
            }
        }
    }

    @Test
    void binaryBroadcastsATrailingBlockOfSeveralDims() {
        int[] shape = {4, 3, 7};
        float[] a = nonZero(1, 84);
        float[] b = nonZero(2, 21);
        Tensor out = CPU.binary(BinaryOp.MUL, CPU.upload("a", a, shape), CPU.upload("b", b, 3, 7));
        float[] got = CPU.download(out);
        for (int i = 0; i < 84; i++) {
            assertEquals(a[i] * b[i % 21], got[i], 0f);
        }
    }

    @Test
    void binaryOutMayAliasA() {
        float[] a = nonZero(5, 40_000);
        float[] b = nonZero(6, 200);
        Tensor ta = CPU.upload("a", a, 200, 200);
        CPU.binary(BinaryOp.SUB, ta, CPU.upload("b", b, 200), ta);
        float[] got = CPU.download(ta);
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i] - b[i % 200], got[i], 0f);
        }
    }

    @Test
    void binaryShapeErrorsNameOpAndTensors() {
        Tensor a = CPU.empty("a", DType.F32, 3, 4);
        ShapeException e = assertThrows(ShapeException.class,
                () -> CPU.binary(BinaryOp.ADD, a, CPU.empty("b", DType.F32, 3)));
        assertTrue(e.getMessage().contains("binary ADD") && e.getMessage().contains("a f32[3,4] cpu")
                && e.getMessage().contains("b f32[3] cpu"), e.getMessage());
        assertThrows(ShapeException.class,
                () -> CPU.binary(BinaryOp.ADD, a, CPU.empty(DType.F32, 4), CPU.empty(DType.F32, 4, 3)));
        ShapeException d = assertThrows(ShapeException.class,
                () -> CPU.binary(BinaryOp.MUL, a, CPU.empty("n", DType.I32, 4)));
        assertTrue(d.getMessage().contains("n i32[4] cpu") && d.getMessage().contains("dtype"), d.getMessage());
        assertThrows(ShapeException.class, () -> CPU.unary(UnaryOp.EXP, a, CPU.empty(DType.F32, 12)));
        assertThrows(ShapeException.class, () -> CPU.unary(UnaryOp.EXP, CPU.empty(DType.BF16, 2)));
    }

    @Test
    void affineAndAxpbyMatchFloat64() {
        long seed = 300;
        for (int[] shape : ReferenceData.ODD_SHAPES) {
            int n = numel(shape);
            float[] x = nonZero(seed++, n);
            float[] y = nonZero(seed++, n);
            float alpha = 0.7f;
            float beta = -1.3f;
            double[] affine = new double[n];
            double[] axpby = new double[n];
            for (int i = 0; i < n; i++) {
                affine[i] = (double) alpha * x[i] + beta;
                axpby[i] = (double) alpha * x[i] + (double) beta * y[i];
            }
            Tensor tx = CPU.upload("x", x, shape);
            Tensor ty = CPU.upload("y", y, shape);
            Tensor out = CPU.upload("out", nans(n), shape);
            CPU.affine(tx, alpha, beta, out);
            assertWithinUlps("affine " + Arrays.toString(shape), affine, CPU.download(out), 0.5);
            CPU.fill(out, Float.NaN);
            CPU.axpby(alpha, tx, beta, ty, out);
            assertWithinUlps("axpby " + Arrays.toString(shape), axpby, CPU.download(out), 0.5);
            CPU.axpby(alpha, tx, beta, ty, ty); // in place on b
            assertWithinUlps("axpby in place " + Arrays.toString(shape), axpby, CPU.download(ty), 0.5);
        }
        Tensor a = CPU.empty("a", DType.F32, 2, 3);
        assertThrows(ShapeException.class, () -> CPU.axpby(1f, a, 1f, CPU.empty(DType.F32, 3, 2), a));
        assertThrows(ShapeException.class, () -> CPU.affine(a, 1f, 1f, CPU.empty(DType.F32, 6)));
    }
}
