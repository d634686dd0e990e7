package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.Philox;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertUlps;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * kernels/random.cu against facm.tensor.Philox (through the CPU backend and directly): uniforms bit for bit; normals
 * within 1 ulp (both sides evaluate Box–Muller in double, whose log and cos may differ in the last double bit, which
 * changes the float only when it sits on a rounding boundary).
 */
@Tag("gpu")
class CudaRandomTest extends GpuCpuPairTestBase {

    /** Seeds with high bits set, offsets across the 2^32 boundary of the counter's low word. */
    private static final long[][] SEEDS_AND_OFFSETS = {
            {0L, 0L}, {42L, 7L}, {-1L, (1L << 32) - 5}, {0x9E3779B97F4A7C15L, 123_456_789_012L}};

    @Test
    void uniformIsBitIdenticalToTheCpu() {
        for (long[] so : SEEDS_AND_OFFSETS) {
            for (int n : new int[] {1, 37, 1_000_003}) {
                GpuCpuPair.Both out = p.poisoned("u", DType.F32, n);
                p.gpu.randomUniform(out.gpu(), so[0], so[1]);
                p.cpu.randomUniform(out.cpu(), so[0], so[1]);
                float[] gpu = p.gpu.download(out.gpu());
                assertBitEqual("uniform seed " + so[0] + " offset " + so[1] + " n " + n, p.cpu.download(out.cpu()), gpu);
                assertEquals(Philox.uniform(so[0], so[1] + n - 1), gpu[n - 1], 0f, "last element vs Philox.uniform");
            }
        }
    }

    @Test
    void normalIsWithinOneUlpOfTheCpu() {
        for (long[] so : SEEDS_AND_OFFSETS) {
            for (int n : new int[] {1, 37, 1_000_003}) {
                GpuCpuPair.Both out = p.poisoned("z", DType.F32, n);
                p.gpu.randomNormal(out.gpu(), so[0], so[1]);
                p.cpu.randomNormal(out.cpu(), so[0], so[1]);
                assertUlps("normal seed " + so[0] + " offset " + so[1] + " n " + n, p.cpu.download(out.cpu()),
                        p.gpu.download(out.gpu()), 1, 0f);
            }
        }
    }

    @Test
    void aSliceOfTheStreamIsTheSameAsTheWhole() {
        GpuCpuPair.Both whole = p.poisoned("whole", DType.F32, 1000);
        GpuCpuPair.Both tail = p.poisoned("tail", DType.F32, 400);
        p.gpu.randomNormal(whole.gpu(), 5, 100);
        p.gpu.randomNormal(tail.gpu(), 5, 700);
        float[] w = p.gpu.download(whole.gpu());
        assertBitEqual("counter offset 700", java.util.Arrays.copyOfRange(w, 600, 1000), p.gpu.download(tail.gpu()));
    }
}
