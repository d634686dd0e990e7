package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertUlps;
import static facm.backend.cuda.GpuCpuPair.values;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * kernels/loss.cu and adamw.cu against the CPU reference (facm.backend.cpu.CpuTrainingOps, float64 inside).
 *
 * <p>Tolerances: AdamW (p, m, v) and the flow-matching gradient are the CPU's fp64 formula operation by operation, so
 * bit-exact. The per-sample loss sums in fp64 in a tree instead of the CPU's sequential order: within 1 ulp of fp32.
 * sumOfSquares sums fp64 block partials: within 1 ulp of the fp32 accumulator (2 after a second accumulation).
 */
@Tag("gpu")
class CudaTrainingOpsTest extends GpuCpuPairTestBase {
    private TrainingOps gpu;
    private TrainingOps cpu;

    @Override
    void opened() {
        gpu = p.gpu.training();
        cpu = p.cpu.training();
    }

    @Override
    void closing() {
        ((CudaTrainingOps) p.gpu.training()).close(); // scratch back to the arena
    }

    private void checkLoss(int b, int c, int h, int w, boolean zeroPixels, float gradScale, long seed) {
        String what = "B" + b + " C" + c + " " + h + "x" + w + (zeroPixels ? " with zero pixels" : "");
        int n = b * c * h * w, plane = h * w;
        float[] pred = values(seed, n, -2f, 2f), target = values(seed + 1, n, -2f, 2f);
        if (zeroPixels) {
            // A zero prediction vector at one pixel (the norm clamp's branch) and a zero target at another.
            for (int ch = 0; ch < c; ch++) {
                pred[ch * plane] = 0f;
                target[(b - 1) * c * plane + ch * plane + plane - 1] = 0f;
            }
        }
        var ps = p.upload("pred", pred, b, c, h, w);
        var us = p.upload("target", target, b, c, h, w);
        var loss = p.poisoned("perSample", DType.F32, b);
        var grad = p.poisoned("gradPred", DType.F32, b, c, h, w);
        gpu.flowMatchingLoss(ps.gpu(), us.gpu(), loss.gpu(), grad.gpu(), gradScale);
        cpu.flowMatchingLoss(ps.cpu(), us.cpu(), loss.cpu(), grad.cpu(), gradScale);
        assertUlps("flowMatchingLoss perSample " + what, p.cpu.download(loss.cpu()), p.gpu.download(loss.gpu()), 1,
                0f);
        assertBitEqual("flowMatchingLoss gradPred " + what, p.cpu.download(grad.cpu()), p.gpu.download(grad.gpu()));
        var lossOnly = p.poisoned("lossOnly", DType.F32, b);
        gpu.flowMatchingLoss(ps.gpu(), us.gpu(), lossOnly.gpu(), null, gradScale);
        assertBitEqual("flowMatchingLoss perSample without gradient " + what, p.gpu.download(loss.gpu()),
                p.gpu.download(lossOnly.gpu()));
    }

    @Test
    void flowMatchingLossMatchesCpu() {
        checkLoss(32, 32, 16, 16, false, 1f / 32, 500);  // XL latents, batch mean
        checkLoss(3, 4, 5, 7, true, 0.5f, 501);
        checkLoss(1, 1, 1, 1, false, 1f, 502);
        checkLoss(2, 3, 32, 32, false, 1f, 503);         // more pixels than threads per block
    }

    @Test
    void flowMatchingLossRejectsSharedAndMisshapenOutputs() {
        var ps = p.upload("pred", values(510, 2 * 3 * 4 * 4, -1f, 1f), 2, 3, 4, 4);
        var us = p.upload("target", values(511, 2 * 3 * 4 * 4, -1f, 1f), 2, 3, 4, 4);
        var loss = p.poisoned("perSample", DType.F32, 2);
        var badLoss = p.poisoned("bad", DType.F32, 3);
        assertThrows(ShapeException.class, () -> gpu.flowMatchingLoss(ps.gpu(), us.gpu(), badLoss.gpu(), null, 1f));
        assertThrows(ShapeException.class, () -> gpu.flowMatchingLoss(ps.gpu(), us.gpu(), loss.gpu(), ps.gpu(), 1f));
        assertThrows(IllegalArgumentException.class, () -> gpu.flowMatchingLoss(ps.gpu(), us.gpu(), loss.gpu(),
                p.poisoned("g", DType.F32, 2, 3, 4, 4).gpu(), Float.NaN));
    }

    private void checkSumOfSquares(int n, long seed) {
        var x = p.upload("x", values(seed, n, -3f, 3f), n);
        var acc = p.upload("acc", new float[] {0.75f}, 1);
        gpu.sumOfSquares(x.gpu(), acc.gpu());
        cpu.sumOfSquares(x.cpu(), acc.cpu());
        assertUlps("sumOfSquares n " + n, p.cpu.download(acc.cpu()), p.gpu.download(acc.gpu()), 1, 0f);
        // A second call adds to the accumulator, and the same input gives the same bits.
        float once = p.gpu.download(acc.gpu())[0];
        gpu.sumOfSquares(x.gpu(), acc.gpu());
        cpu.sumOfSquares(x.cpu(), acc.cpu());
        assertUlps("sumOfSquares n " + n + " accumulated twice", p.cpu.download(acc.cpu()),
                p.gpu.download(acc.gpu()), 2, 0f);
        var again = p.upload("again", new float[] {0.75f}, 1);
        gpu.sumOfSquares(x.gpu(), again.gpu());
        assertEquals(Float.floatToRawIntBits(once), Float.floatToRawIntBits(p.gpu.download(again.gpu())[0]),
                "sumOfSquares is reproducible");
    }

    @Test
    void sumOfSquaresMatchesCpu() {
        checkSumOfSquares(1, 520);
        checkSumOfSquares(2048, 521);          // one block: adds to acc directly
        checkSumOfSquares(2049, 522);          // two blocks and the finishing pass
        checkSumOfSquares(1152 * 1152, 523);   // an XL weight matrix
        checkSumOfSquares(3 * 1152 * 1152 + 7, 524);
    }

    private void checkAdamw(int n, float lr, float wd, int step, float gradScale, long seed) {
        String what = "n " + n + " lr " + lr + " wd " + wd + " step " + step + " gradScale " + gradScale;
        var param = p.upload("param", values(seed, n, -1f, 1f), n);
        var grad = p.upload("grad", values(seed + 1, n, -1f, 1f), n);
        var m = p.upload("m", values(seed + 2, n, -0.1f, 0.1f), n);
        var v = p.upload("v", values(seed + 3, n, 1e-6f, 1e-2f), n);
        for (int s = step; s < step + 3; s++) {
            gpu.adamw(param.gpu(), grad.gpu(), m.gpu(), v.gpu(), lr, 0.9f, 0.999f, 1e-8f, wd, s, gradScale);
            cpu.adamw(param.cpu(), grad.cpu(), m.cpu(), v.cpu(), lr, 0.9f, 0.999f, 1e-8f, wd, s, gradScale);
        }
        assertBitEqual("adamw param " + what, p.cpu.download(param.cpu()), p.gpu.download(param.gpu()));
        assertBitEqual("adamw m " + what, p.cpu.download(m.cpu()), p.gpu.download(m.gpu()));
        assertBitEqual("adamw v " + what, p.cpu.download(v.cpu()), p.gpu.download(v.gpu()));
    }

    @Test
    void adamwIsBitIdenticalToCpu() {
        checkAdamw(1001, 1e-4f, 0f, 1, 1f, 530);           // facm-spec.md §5.1 settings, first steps
        checkAdamw(1152 * 1152, 1e-3f, 0.01f, 7, 0.37f, 531);
        checkAdamw(3, 0.5f, 0.1f, 1000, 2f, 532);
    }

    @Test
    void adamwRejectsBadHyperparameters() {
        var a = p.upload("a", values(540, 8, -1f, 1f), 8);
        var b = p.upload("b", values(541, 8, -1f, 1f), 8);
        var c = p.upload("c", values(542, 8, -1f, 1f), 8);
        var d = p.upload("d", values(543, 8, 0.1f, 1f), 8);
        assertThrows(IllegalArgumentException.class, () -> gpu.adamw(a.gpu(), b.gpu(), c.gpu(), d.gpu(), 1e-3f, 1f,
                0.999f, 1e-8f, 0f, 1, 1f));
        assertThrows(IllegalArgumentException.class, () -> gpu.adamw(a.gpu(), b.gpu(), c.gpu(), d.gpu(), 1e-3f, 0.9f,
                0.999f, 1e-8f, 0f, 0, 1f));
        assertThrows(ShapeException.class, () -> gpu.adamw(a.gpu(), b.gpu(), b.gpu(), d.gpu(), 1e-3f, 0.9f, 0.999f,
                1e-8f, 0f, 1, 1f));
    }
}
