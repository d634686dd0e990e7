package facm.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class CpuConvertTest {
    private static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    @Test
    void f32ToBf16RoundsToNearestEvenAndBackIsExact() {
        float[] x = ReferenceData.nonZero(9, 129 * 257);
        x[0] = Float.NaN;
        x[1] = Float.NEGATIVE_INFINITY;
        x[2] = 1.00390625f; // tie: 1.0 (even)
        x[3] = 1.01171875f; // tie: 1.015625 (even)
        Tensor bf = CPU.convert(CPU.upload("x", x, 129, 257), DType.BF16);
        short[] bits = CPU.downloadBf16(bf);
        for (int i = 0; i < x.length; i++) {
            assertEquals(Bf16.fromFloat(x[i]), bits[i], "element " + i);
        }
        assertEquals(1f, Bf16.toFloat(bits[2]));
        assertEquals(1.015625f, Bf16.toFloat(bits[3]));
        float[] back = CPU.download(CPU.convert(bf, DType.F32));
        for (int i = 0; i < x.length; i++) {
            assertEquals(Float.floatToIntBits(Bf16.toFloat(bits[i])), Float.floatToIntBits(back[i]));
        }
        assertTrue(Float.isNaN(back[0]));
    }

    @Test
    void f32ToI32TruncatesTowardZeroAndSaturates() {
        float[] x = {2.7f, -2.7f, 0.5f, -0.5f, 3e9f, -3e9f, Float.NaN, 16777217f, -7f};
        int[] expected = {2, -2, 0, 0, Integer.MAX_VALUE, Integer.MIN_VALUE, 0, 16777216, -7};
        assertArrayEquals(expected, CPU.downloadInts(CPU.convert(CPU.upload("x", x, 9), DType.I32)));
    }

    @Test
    void i32ToF32RoundsToNearestEven() {
        int[] x = {0, -5, 16777217, 16777219, Integer.MAX_VALUE};
        float[] expected = {0f, -5f, 16777216f, 16777220f, 2147483648f};
        assertArrayEquals(expected, CPU.download(CPU.convert(CPU.upload("n", x, 5), DType.F32)));
    }

    @Test
    void sameDTypeCopiesAndUnsupportedPairsFail() {
        Tensor x = CPU.upload("x", new float[] {1, 2}, 2);
        assertArrayEquals(new float[] {1, 2}, CPU.download(CPU.convert(x, DType.F32)));
        Tensor h = CPU.empty("h", DType.BF16, 2);
        ShapeException e = assertThrows(ShapeException.class, () -> CPU.convert(h, CPU.empty("n", DType.I32, 2)));
        assertTrue(e.getMessage().contains("h bf16[2] cpu") && e.getMessage().contains("n i32[2] cpu"),
                e.getMessage());
        assertThrows(ShapeException.class, () -> CPU.convert(CPU.empty(DType.I32, 2), DType.BF16));
        assertThrows(ShapeException.class, () -> CPU.convert(x, CPU.empty(DType.BF16, 1, 2)));
    }
}
