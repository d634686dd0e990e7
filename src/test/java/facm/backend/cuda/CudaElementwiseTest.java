package facm.backend.cuda;

import facm.tensor.Bf16;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.UnaryOp;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertUlps;
import static facm.backend.cuda.GpuCpuPair.numel;
import static facm.backend.cuda.GpuCpuPair.values;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * kernels/elementwise.cu against the CPU reference: every unary and binary op, affine, axpby, fill and the dtype
 * conversions, on odd and realistic shapes, with outputs poisoned by NaN first (syncCheck makes every launch report
 * its own fault).
 *
 * <p>Tolerances: EXP, LOG, TANH, COS, SIN use the fp32 libdevice functions (documented max error 1-2 ulp) against
 * the CPU's correctly rounded double evaluation, so 3 ulp; SIGMOID and SILU chain an expf, an add, a divide (and a
 * multiply) for 4 and 5 ulp. Everything else is computed with the CPU's exact formula and must match bit for bit.
 */
@Tag("gpu")
class CudaElementwiseTest extends GpuCpuPairTestBase {
    /** Results below this magnitude are denormal; there a few ulp of an intermediate are many ulp of the result. */
    private static final float DENORMAL_FLOOR = 1e-37f;
    private static final int[][] SHAPES = {{1}, {3, 37, 5}, {257, 1023}};
    private static final int[] LARGE = {64, 256, 1152};



    private static int ulpBound(UnaryOp op) {
        return switch (op) {
            case NEG, ABS, SQRT, RSQRT, SQUARE -> 0;
            case EXP, LOG, TANH, COS, SIN -> 3;
            case SIGMOID -> 4;
            case SILU -> 5;
        };
    }

    /** Inputs in each function's useful range; positive for LOG, SQRT and RSQRT. */
    private static float[] inputs(UnaryOp op, long seed, int n) {
        return switch (op) {
            case LOG, SQRT, RSQRT -> values(seed, n, 1e-3f, 50f);
            case EXP -> values(seed, n, -30f, 30f);
            case SIGMOID, SILU, TANH -> values(seed, n, -20f, 20f);
            case COS, SIN -> values(seed, n, -100f, 100f);
            default -> values(seed, n, -8f, 8f);
        };
    }

    @Test
    void everyUnaryOpMatchesTheCpu() {
        for (UnaryOp op : UnaryOp.values()) {
            for (int[] shape : SHAPES) {
                float[] x = inputs(op, 11 + op.ordinal(), numel(shape));
                GpuCpuPair.Both in = p.upload("x", x, shape);
                GpuCpuPair.Both out = p.poisoned("out", DType.F32, shape);
                p.gpu.unary(op, in.gpu(), out.gpu());
                p.cpu.unary(op, in.cpu(), out.cpu());
                assertUlps(op + " " + facm.tensor.Shapes.str(shape), p.cpu.download(out.cpu()),
                        p.gpu.download(out.gpu()), ulpBound(op), DENORMAL_FLOOR);
            }
        }
    }

    @Test
    void unaryOnALargeTensorAndInPlace() {
        float[] x = values(5, numel(LARGE), -10f, 10f);
        GpuCpuPair.Both t = p.upload("x", x, LARGE);
        p.gpu.unary(UnaryOp.TANH, t.gpu(), t.gpu());
        p.cpu.unary(UnaryOp.TANH, t.cpu(), t.cpu());
        assertUlps("TANH in place " + facm.tensor.Shapes.str(LARGE), p.cpu.download(t.cpu()), p.gpu.download(t.gpu()),
                3, DENORMAL_FLOOR);
    }

    @Test
    void binaryOpsWithEveryBroadcastForm() {
        int[] a = {3, 37, 5};
        int[][] bShapes = {{3, 37, 5}, {37, 5}, {5}, {1}, {}};
        float[] av = values(21, numel(a), -6f, 6f);
        for (BinaryOp op : BinaryOp.values()) {
            for (int[] bs : bShapes) {
                GpuCpuPair.Both x = p.upload("a", av, a);
                GpuCpuPair.Both y = p.upload("b", values(22 + bs.length, numel(bs), -6f, 6f), bs);
                GpuCpuPair.Both out = p.poisoned("out", DType.F32, a);
                p.gpu.binary(op, x.gpu(), y.gpu(), out.gpu());
                p.cpu.binary(op, x.cpu(), y.cpu(), out.cpu());
                String what = op + " a" + facm.tensor.Shapes.str(a) + " b" + facm.tensor.Shapes.str(bs);
                assertBitEqual(what, p.cpu.download(out.cpu()), p.gpu.download(out.gpu()));
                // out aliasing a
                p.gpu.binary(op, x.gpu(), y.gpu(), x.gpu());
                p.cpu.binary(op, x.cpu(), y.cpu(), x.cpu());
                assertBitEqual(what + " in place", p.cpu.download(x.cpu()), p.gpu.download(x.gpu()));
            }
        }
    }

    @Test
    void binaryBiasRowOverALargeTensor() {
        GpuCpuPair.Both x = p.upload("x", values(31, numel(LARGE), -3f, 3f), LARGE);
        GpuCpuPair.Both bias = p.upload("bias", values(32, 1152, -1f, 1f), 1152);
        GpuCpuPair.Both out = p.poisoned("out", DType.F32, LARGE);
        p.gpu.binary(BinaryOp.ADD, x.gpu(), bias.gpu(), out.gpu());
        p.cpu.binary(BinaryOp.ADD, x.cpu(), bias.cpu(), out.cpu());
        assertBitEqual("ADD bias row", p.cpu.download(out.cpu()), p.gpu.download(out.gpu()));
    }

    @Test
    void maxAndMinFollowJavaForNaNAndSignedZero() {
        float[] a = {Float.NaN, 1f, -0f, 0f, 2f, Float.NEGATIVE_INFINITY};
        float[] b = {1f, Float.NaN, 0f, -0f, -3f, 5f};
        for (BinaryOp op : new BinaryOp[] {BinaryOp.MAX, BinaryOp.MIN}) {
            GpuCpuPair.Both x = p.upload("a", a, 6);
            GpuCpuPair.Both y = p.upload("b", b, 6);
            GpuCpuPair.Both out = p.poisoned("out", DType.F32, 6);
            p.gpu.binary(op, x.gpu(), y.gpu(), out.gpu());
            p.cpu.binary(op, x.cpu(), y.cpu(), out.cpu());
            float[] expected = p.cpu.download(out.cpu());
            float[] actual = p.gpu.download(out.gpu());
            for (int i = 0; i < a.length; i++) {
                // Bit-exact including the sign of zero; NaN positions must agree.
                boolean same = Float.isNaN(expected[i]) ? Float.isNaN(actual[i])
                        : Float.floatToRawIntBits(expected[i]) == Float.floatToRawIntBits(actual[i]);
                org.junit.jupiter.api.Assertions.assertTrue(same, op + "(" + a[i] + ", " + b[i] + "): cpu "
                        + expected[i] + ", gpu " + actual[i]);
            }
        }
    }

    @Test
    void affineAndAxpbyMatchBitForBit() {
        for (int[] shape : new int[][] {{1}, {3, 37, 5}, LARGE}) {
            GpuCpuPair.Both x = p.upload("x", values(41, numel(shape), -5f, 5f), shape);
            GpuCpuPair.Both y = p.upload("y", values(42, numel(shape), -5f, 5f), shape);
            GpuCpuPair.Both out = p.poisoned("out", DType.F32, shape);
            p.gpu.affine(x.gpu(), 0.7310586f, -1.25e-3f, out.gpu());
            p.cpu.affine(x.cpu(), 0.7310586f, -1.25e-3f, out.cpu());
            assertBitEqual("affine " + facm.tensor.Shapes.str(shape), p.cpu.download(out.cpu()),
                    p.gpu.download(out.gpu()));
            p.gpu.axpby(0.999f, x.gpu(), -0.0316f, y.gpu(), out.gpu());
            p.cpu.axpby(0.999f, x.cpu(), -0.0316f, y.cpu(), out.cpu());
            assertBitEqual("axpby " + facm.tensor.Shapes.str(shape), p.cpu.download(out.cpu()),
                    p.gpu.download(out.gpu()));
            // aliasing: out = b
            p.gpu.axpby(1.5f, x.gpu(), 0.25f, y.gpu(), y.gpu());
            p.cpu.axpby(1.5f, x.cpu(), 0.25f, y.cpu(), y.cpu());
            assertBitEqual("axpby in place", p.cpu.download(y.cpu()), p.gpu.download(y.gpu()));
        }
    }

    @Test
    void fillF32AndBf16() {
        GpuCpuPair.Both f = p.poisoned("f", DType.F32, 3, 37, 5);
        p.gpu.fill(f.gpu(), -2.75f);
        assertBitEqual("fill f32", filled(555, -2.75f), p.gpu.download(f.gpu()));
        GpuCpuPair.Both h = p.poisoned("h", DType.BF16, 257, 3);
        p.gpu.fill(h.gpu(), 1.0f / 3.0f);
        p.cpu.fill(h.cpu(), 1.0f / 3.0f);
        assertArrayEquals(p.cpu.downloadBf16(h.cpu()), p.gpu.downloadBf16(h.gpu()), "fill bf16 bit patterns");
    }

    private static float[] filled(int n, float v) {
        float[] r = new float[n];
        java.util.Arrays.fill(r, v);
        return r;
    }

    @Test
    void conversionsMatchBitForBit() {
        float[] x = values(51, 4099, -70000f, 70000f);
        // Edge values: ties for bf16 rounding, NaN, infinities, int saturation, negative zero, tiny numbers.
        float[] edges = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 3e9f, -3e9f, -0f,
                Float.intBitsToFloat(0x3F808000), Float.intBitsToFloat(0x3F818000), Float.MAX_VALUE, 1e-40f,
                2147483520f, -2147483648f, 16777217f, 0.5f, -1.5f};
        System.arraycopy(edges, 0, x, 0, edges.length);
        GpuCpuPair.Both in = p.upload("x", x, x.length);

        GpuCpuPair.Both h = p.poisoned("h", DType.BF16, x.length);
        p.gpu.convert(in.gpu(), h.gpu());
        p.cpu.convert(in.cpu(), h.cpu());
        short[] hCpu = p.cpu.downloadBf16(h.cpu());
        assertArrayEquals(hCpu, p.gpu.downloadBf16(h.gpu()), "f32 -> bf16");
        for (int i = 0; i < edges.length; i++) {
            assertArrayEquals(new short[] {Bf16.fromFloat(x[i])}, new short[] {hCpu[i]}, "Bf16 reference " + x[i]);
        }

        GpuCpuPair.Both back = p.poisoned("back", DType.F32, x.length);
        p.gpu.convert(h.gpu(), back.gpu());
        p.cpu.convert(h.cpu(), back.cpu());
        assertBitEqual("bf16 -> f32", p.cpu.download(back.cpu()), p.gpu.download(back.gpu()));

        GpuCpuPair.Both ints = p.poisoned("ints", DType.I32, x.length);
        p.gpu.convert(in.gpu(), ints.gpu());
        p.cpu.convert(in.cpu(), ints.cpu());
        int[] iCpu = p.cpu.downloadInts(ints.cpu());
        assertArrayEquals(iCpu, p.gpu.downloadInts(ints.gpu()), "f32 -> i32 (truncation, NaN -> 0, saturation)");

        GpuCpuPair.Both again = p.poisoned("again", DType.F32, x.length);
        p.gpu.convert(ints.gpu(), again.gpu());
        p.cpu.convert(ints.cpu(), again.cpu());
        assertBitEqual("i32 -> f32", p.cpu.download(again.cpu()), p.gpu.download(again.gpu()));
    }

    @Test
    void uploadDownloadAndCopyRoundTrip() {
        float[] x = values(61, numel(LARGE), -1f, 1f);
        GpuCpuPair.Both t = p.upload("x", x, LARGE);
        assertBitEqual("upload/download", x, p.gpu.download(t.gpu()));
        GpuCpuPair.Both c = p.poisoned("copy", DType.F32, 256 * 64, 1152);
        p.gpu.copy(t.gpu(), c.gpu());
        assertBitEqual("copy", x, p.gpu.download(c.gpu()));
        int[] ints = {0, -1, Integer.MAX_VALUE, Integer.MIN_VALUE, 42};
        assertArrayEquals(ints, p.gpu.downloadInts(p.upload("i", ints, 5).gpu()), "int round trip");
        short[] bits = {0, (short) 0x8000, 0x7F80, (short) 0xFFC1, 0x3F80};
        assertArrayEquals(bits, p.gpu.downloadBf16(p.uploadBf16("h", bits, 5).gpu()), "bf16 round trip");
        assertArrayEquals(new float[0], p.gpu.download(p.upload("empty", new float[0], 0, 7).gpu()), "empty tensor");
    }
}
