package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertUlps;
import static facm.backend.cuda.GpuCpuPair.values;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * softmax_cross_entropy_f32 (kernels/loss.cu) against the CPU reference (fp64 inside both). Outputs start as NaN, so
 * a row or class the kernel skips fails. Tolerance: 2 ulp of the fp32 result (the fp64 sum runs in another order and
 * exp/log are the device library's, each within an fp64 ulp or two), with an absolute floor of 1e-30 for gradients
 * that underflow towards zero.
 */
@Tag("gpu")
class CudaSoftmaxCrossEntropyTest extends GpuCpuPairTestBase {
    private TrainingOps gpu;
    private TrainingOps cpu;

    @Override
    void opened() {
        gpu = p.gpu.training();
        cpu = p.cpu.training();
    }

    @Override
    void closing() {
        ((CudaTrainingOps) p.gpu.training()).close();
    }

    private void check(int b, int k, float spread, float gradScale, long seed) {
        String what = "softmaxCrossEntropy B" + b + " K" + k + " spread " + spread;
        float[] logits = values(seed, b * k, -spread, spread);
        int[] labels = new SplittableRandom(seed + 1).ints(b, 0, k).toArray();
        var z = p.upload("logits", logits, b, k);
        var y = p.upload("labels", labels, b);
        var loss = p.poisoned("perSample", DType.F32, b);
        var grad = p.poisoned("gradLogits", DType.F32, b, k);
        gpu.softmaxCrossEntropy(z.gpu(), y.gpu(), loss.gpu(), grad.gpu(), gradScale);
        cpu.softmaxCrossEntropy(z.cpu(), y.cpu(), loss.cpu(), grad.cpu(), gradScale);
        float[] gpuLoss = p.gpu.download(loss.gpu());
        assertUlps(what + " perSample", p.cpu.download(loss.cpu()), gpuLoss, 2, 0f);
        assertUlps(what + " gradLogits", p.cpu.download(grad.cpu()), p.gpu.download(grad.gpu()), 2, 1e-30f);
        for (float v : gpuLoss) {
            assertTrue(Float.isFinite(v) && v >= 0f, what + ": loss " + v);
        }
        var lossOnly = p.poisoned("lossOnly", DType.F32, b);
        var untouched = p.poisoned("untouched", DType.F32, b, k);
        gpu.softmaxCrossEntropy(z.gpu(), y.gpu(), lossOnly.gpu(), null, gradScale);
        assertBitEqual(what + " perSample without gradient", gpuLoss, p.gpu.download(lossOnly.gpu()));
        for (float v : p.gpu.download(untouched.gpu())) {
            assertTrue(Float.isNaN(v), what + ": another buffer was written");
        }
    }

    @Test
    void matchesCpuOnOddShapes() {
        long seed = 1400;
        for (int b : new int[] {1, 3, 37}) {
            for (int k : new int[] {10, 1000}) {
                check(b, k, 4f, 1f / b, seed);
                seed += 2;
            }
        }
        check(2, 1, 1f, 1f, 1450);          // one class: loss 0, gradient 0
        check(5, 33, 60f, 0.25f, 1452);     // peaked rows (probabilities near 0 and 1) and a lane remainder
        check(300, 7, 8f, 1f / 300, 1454);  // more rows than one block, fewer classes than lanes
    }

    @Test
    void aNanLogitPoisonsItsRowOnBothBackends() {
        float[] logits = values(1460, 3 * 10, -2f, 2f);
        logits[10 + 4] = Float.NaN;
        var z = p.upload("logits", logits, 3, 10);
        var y = p.upload("labels", new int[] {1, 2, 3}, 3);
        var loss = p.poisoned("perSample", DType.F32, 3);
        var grad = p.poisoned("gradLogits", DType.F32, 3, 10);
        gpu.softmaxCrossEntropy(z.gpu(), y.gpu(), loss.gpu(), grad.gpu(), 1f);
        float[] l = p.gpu.download(loss.gpu());
        assertTrue(Float.isFinite(l[0]) && Float.isNaN(l[1]) && Float.isFinite(l[2]), java.util.Arrays.toString(l));
        cpu.softmaxCrossEntropy(z.cpu(), y.cpu(), loss.cpu(), grad.cpu(), 1f);
        assertUlps("with a NaN logit", p.cpu.download(loss.cpu()), l, 2, 0f);
    }

    @Test
    void labelOutOfRangeIsAClearError() {
        var z = p.upload("logits", values(1470, 4 * 10, -1f, 1f), 4, 10);
        var y = p.upload("labels", new int[] {0, 9, 10, 1}, 4);
        var loss = p.poisoned("perSample", DType.F32, 4);
        var e = assertThrows(IllegalArgumentException.class,
                () -> gpu.softmaxCrossEntropy(z.gpu(), y.gpu(), loss.gpu(), null, 1f));
        assertEquals("softmaxCrossEntropy: label 10 of row 2 is outside [0, 10) for logits " + z.gpu().describe(),
                e.getMessage());
        var negative = p.upload("labels", new int[] {0, -3, 1, 1}, 4);
        assertThrows(IllegalArgumentException.class,
                () -> gpu.softmaxCrossEntropy(z.gpu(), negative.gpu(), loss.gpu(), null, 1f));
        var wrongRows = p.upload("labels", new int[] {0, 1, 2}, 3);
        assertThrows(ShapeException.class,
                () -> gpu.softmaxCrossEntropy(z.gpu(), wrongRows.gpu(), loss.gpu(), null, 1f));
        assertThrows(ShapeException.class,
                () -> gpu.softmaxCrossEntropy(z.gpu(), y.gpu(), loss.gpu(), z.gpu(), 1f));
    }
}
