package facm.backend.cpu;

import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The foreach defaults of {@link TrainingOps} (what the CPU backend runs, and the reference for the CUDA overrides):
 * each must equal its per-tensor op applied tensor by tensor, bit for bit.
 */
class CpuForeachTest {
    private static final int[] SIZES = {1, 7, 0, 1000, 2049};
    private final CpuBackend be = new CpuBackend();
    private final TrainingOps ops = be.training();
    private final List<Tensor> made = new ArrayList<>();

    @AfterEach
    void close() {
        made.forEach(Tensor::close);
        be.close();
    }

    private List<Tensor> set(long seed, float lo, float hi) {
        List<Tensor> out = new ArrayList<>();
        for (int n : SIZES) {
            SplittableRandom r = new SplittableRandom(seed++);
            float[] v = new float[n];
            for (int i = 0; i < n; i++) {
                v[i] = (float) (lo + (hi - lo) * r.nextDouble());
            }
            Tensor t = be.upload("t", v, n);
            made.add(t);
            out.add(t);
        }
        return out;
    }

    private Tensor upload(int[] words) {
        Tensor t = be.upload("w", words, words.length);
        made.add(t);
        return t;
    }

    private Tensor upload(float[] values) {
        Tensor t = be.upload("f", values, values.length);
        made.add(t);
        return t;
    }

    private void assertSame(String what, List<Tensor> expected, List<Tensor> actual) {
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(be.download(expected.get(i)), be.download(actual.get(i)), what + " tensor " + i);
        }
    }

    @Test
    void adamwForeachIsThePerTensorOp() {
        List<Tensor> g = set(10, -1f, 1f);
        List<Tensor> p1 = set(20, -1f, 1f), m1 = set(30, -0.1f, 0.1f), v1 = set(40, 1e-6f, 1e-2f);
        List<Tensor> p2 = set(20, -1f, 1f), m2 = set(30, -0.1f, 0.1f), v2 = set(40, 1e-6f, 1e-2f);
        ops.adamwForeach(p1, g, m1, v1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3, 0.37f);
        for (int i = 0; i < SIZES.length; i++) {
            ops.adamw(p2.get(i), g.get(i), m2.get(i), v2.get(i), 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3, 0.37f);
        }
        assertSame("param", p2, p1);
        assertSame("m", m2, m1);
        assertSame("v", v2, v1);
        // The device-step form: step 1 from a bias-correction table, clip factor from control.
        Tensor bias = upload(fp64Words(0, 0, 1 - Math.pow(0.9f, 1), 1 - Math.pow(0.999f, 1)));
        Tensor counter = upload(new int[] {0});
        Tensor control = upload(new float[] {0.5f, 0f});
        ops.adamwForeach(p1, g, m1, v1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, bias, counter, control);
        for (int i = 0; i < SIZES.length; i++) {
            ops.adamw(p2.get(i), g.get(i), m2.get(i), v2.get(i), 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 0.5f);
        }
        assertSame("device-step param", p2, p1);
        assertSame("device-step v", v2, v1);
    }

    @Test
    void emaUpdateForeachIsAxpbyOrACopy() {
        List<Tensor> theta = set(50, -1f, 1f);
        for (double decay : new double[] {0, 0.9999}) {
            List<Tensor> a1 = set(60, -1f, 1f), a2 = set(60, -1f, 1f);
            ops.emaUpdateForeach(a1, theta, decay);
            for (int i = 0; i < SIZES.length; i++) {
                if (decay == 0) {
                    be.copy(theta.get(i), a2.get(i));
                } else {
                    be.axpby((float) decay, a2.get(i), (float) (1 - decay), theta.get(i), a2.get(i));
                }
            }
            assertSame("ema decay " + decay, a2, a1);
        }
        List<Tensor> a1 = set(70, -1f, 1f), a2 = set(70, -1f, 1f);
        Tensor decays = upload(fp64Words(0, 0, 0.83));
        Tensor counter = upload(new int[] {1});
        Tensor control = upload(new float[] {1f, 0f});
        ops.emaUpdateForeach(a1, theta, decays, counter, control);
        for (int i = 0; i < SIZES.length; i++) {
            ops.emaUpdate(a2.get(i), theta.get(i), decays, counter, control);
        }
        assertSame("device-step ema", a2, a1);
    }

    @Test
    void sumOfSquaresForeachAccumulatesInListOrder() {
        List<Tensor> xs = set(80, -3f, 3f);
        Tensor acc1 = upload(new float[] {0.75f}), acc2 = upload(new float[] {0.75f});
        ops.sumOfSquaresForeach(xs, acc1);
        xs.forEach(x -> ops.sumOfSquares(x, acc2));
        assertEquals(Float.floatToRawIntBits(be.download(acc2)[0]), Float.floatToRawIntBits(be.download(acc1)[0]));
    }

    @Test
    void zeroForeachZeroesEveryTensor() {
        List<Tensor> xs = set(90, -1f, 1f);
        ops.zeroForeach(xs);
        for (int i = 0; i < SIZES.length; i++) {
            assertArrayEquals(new float[SIZES[i]], be.download(xs.get(i)), "tensor " + i);
        }
    }

    @Test
    void listsOfDifferentLengthsAreRejected() {
        List<Tensor> a = set(100, -1f, 1f);
        var e = assertThrows(IllegalArgumentException.class, () -> ops.emaUpdateForeach(a, a.subList(0, 2), 0.5));
        assertEquals("emaUpdateForeach: tensor lists of different lengths [5, 2]", e.getMessage());
    }

    private static int[] fp64Words(double... values) {
        int[] words = new int[2 * values.length];
        for (int i = 0; i < values.length; i++) {
            long bits = Double.doubleToRawLongBits(values[i]);
            words[2 * i] = (int) bits;
            words[2 * i + 1] = (int) (bits >>> 32);
        }
        return words;
    }
}
