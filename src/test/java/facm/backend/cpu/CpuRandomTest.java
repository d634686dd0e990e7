package facm.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.tensor.DType;
import facm.tensor.Philox;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class CpuRandomTest {
    private static final CpuBackend CPU = new CpuBackend(2);
    private static final int N = 100_000;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    @Test
    void normalElementIIsPhiloxAtOffsetPlusI() {
        long seed = 0x1234_5678_9ABCL;
        long offset = (1L << 32) - 3; // crosses into the counter's high word
        Tensor t = CPU.empty(DType.F32, 7, 11);
        CPU.randomNormal(t, seed, offset);
        float[] got = CPU.download(t);
        for (int i = 0; i < got.length; i++) {
            assertEquals(Philox.normal(seed, offset + i), got[i], 0f, "element " + i);
        }
        CPU.randomUniform(t, seed, offset);
        got = CPU.download(t);
        for (int i = 0; i < got.length; i++) {
            assertEquals(Philox.uniform(seed, offset + i), got[i], 0f, "element " + i);
        }
    }

    @Test
    void normalMoments() {
        Tensor t = CPU.empty(DType.F32, N);
        CPU.randomNormal(t, 42, 0);
        float[] v = CPU.download(t);
        double mean = 0;
        for (float x : v) {
            mean += x;
        }
        mean /= N;
        double var = 0;
        double fourth = 0;
        for (float x : v) {
            var += (x - mean) * (x - mean);
            fourth += Math.pow(x - mean, 4);
        }
        var /= N;
        fourth /= N * var * var;
        // Standard errors for 1e5 samples: mean 0.0032, variance 0.0045, kurtosis 0.015; bounds are ~5 of them.
        assertEquals(0.0, mean, 0.016, "mean");
        assertEquals(1.0, var, 0.025, "variance");
        assertEquals(3.0, fourth, 0.08, "kurtosis");
    }

    @Test
    void uniformRangeAndMoments() {
        Tensor t = CPU.empty(DType.F32, N);
        CPU.randomUniform(t, 7, 123);
        float[] v = CPU.download(t);
        double mean = 0;
        double var = 0;
        for (float x : v) {
            assertTrue(x > 0f && x < 1f, "uniform value " + x + " outside (0,1)");
            mean += x;
        }
        mean /= N;
        for (float x : v) {
            var += (x - mean) * (x - mean);
        }
        var /= N;
        assertEquals(0.5, mean, 0.005, "mean");
        assertEquals(1.0 / 12, var, 0.002, "variance");
    }

    @Test
    void sameSeedSameNumbersOnAnyThreadCount() {
        try (CpuBackend one = new CpuBackend(1); CpuBackend three = new CpuBackend(3)) {
            Tensor a = one.empty(DType.F32, 3, 50_001);
            Tensor b = three.empty(DType.F32, 3, 50_001);
            one.randomNormal(a, 99, 5);
            three.randomNormal(b, 99, 5);
            assertArrayEquals(one.download(a), three.download(b));
            one.randomUniform(a, 99, 5);
            three.randomUniform(b, 99, 5);
            assertArrayEquals(one.download(a), three.download(b));
        }
    }

    @Test
    void offsetShiftsTheStreamAndSeedChangesIt() {
        Tensor a = CPU.empty(DType.F32, 100);
        Tensor b = CPU.empty(DType.F32, 90);
        CPU.randomNormal(a, 3, 0);
        CPU.randomNormal(b, 3, 10);
        assertArrayEquals(Arrays.copyOfRange(CPU.download(a), 10, 100), CPU.download(b));
        Tensor c = CPU.empty(DType.F32, 100);
        CPU.randomNormal(c, 4, 0);
        assertFalse(Arrays.equals(CPU.download(a), CPU.download(c)));
    }

    @Test
    void onlyF32Outputs() {
        ShapeException e = assertThrows(ShapeException.class,
                () -> CPU.randomNormal(CPU.empty("h", DType.BF16, 3), 1, 0));
        assertTrue(e.getMessage().contains("randomNormal") && e.getMessage().contains("h bf16[3] cpu"),
                e.getMessage());
        assertThrows(ShapeException.class, () -> CPU.randomUniform(CPU.empty(DType.I32, 3), 1, 0));
    }
}
