package facm.backend.cuda;

import facm.backend.cpu.ConsistencyLossCases;
import facm.backend.cpu.ConsistencyLossCases.Config;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static facm.backend.cpu.ConsistencyLossCases.FACM;
import static facm.backend.cpu.ConsistencyLossCases.MEAN_FLOW;
import static facm.backend.cpu.ConsistencyLossCases.SCM;
import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertWithin;
import static facm.backend.cuda.GpuCpuPair.numel;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kernels/loss.cu consistency_loss_f32 against the CPU reference (facm.backend.cpu.CpuTrainingOps) for FACM, MeanFlow
 * and sCM ({@link ConsistencyLossCases}), outputs poisoned with NaN first.
 *
 * <p>Tolerance: |gpu − cpu| ≤ 1e-5·|cpu| per element (plus the smallest normal float, for results in the denormal
 * range), on perSample and on gradPred. Both sides compute Δ with the same fp64 operations (bit-identical); the
 * per-sample sums run in a tree on the GPU and sequentially on the CPU, so e_b, the rms and hence L_b and gradPred
 * agree to about 1e-15 before the fp32 rounding: in practice within 1 ulp, far inside the stated bound.
 */
@Tag("gpu")
class CudaConsistencyLossTest extends GpuCpuPairTestBase {
    private static final float RELATIVE_TOLERANCE = 1e-5f;
    private static final float GRAD_SCALE = 1f / 3;

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

    /** Results of one call on both backends. */
    private record Outputs(float[] cpuLoss, float[] gpuLoss, float[] cpuGrad, float[] gpuGrad) {
    }

    private Outputs run(Config c, Config coefsOf, int[] shape, long seed, int nanAt) {
        int n = numel(shape), b = shape[0];
        float[] velocity = ConsistencyLossCases.inputs(seed + 2, n);
        if (nanAt >= 0) {
            velocity[nanAt] = Float.NaN;
        }
        var f = p.upload("pred", ConsistencyLossCases.inputs(seed, n), shape);
        var t = p.upload("tangent", ConsistencyLossCases.inputs(seed + 1, n), shape);
        var v = p.upload("velocity", velocity, shape);
        var k = p.upload("coefs", ConsistencyLossCases.coefs(coefsOf, b, seed + 3), b, 3);
        var loss = p.poisoned("perSample", DType.F32, b);
        var grad = p.poisoned("gradPred", DType.F32, shape);
        gpu.consistencyLoss(f.gpu(), t.gpu(), v.gpu(), k.gpu(), c.clip(), c.normEps(), c.weightPower(),
                c.weightEps(), loss.gpu(), grad.gpu(), GRAD_SCALE);
        cpu.consistencyLoss(f.cpu(), t.cpu(), v.cpu(), k.cpu(), c.clip(), c.normEps(), c.weightPower(),
                c.weightEps(), loss.cpu(), grad.cpu(), GRAD_SCALE);
        Outputs out = new Outputs(p.cpu.download(loss.cpu()), p.gpu.download(loss.gpu()), p.cpu.download(grad.cpu()),
                p.gpu.download(grad.gpu()));

        // Without gradPred the kernel's loss passes are the same: the same bits.
        var lossOnly = p.poisoned("lossOnly", DType.F32, b);
        gpu.consistencyLoss(f.gpu(), t.gpu(), v.gpu(), k.gpu(), c.clip(), c.normEps(), c.weightPower(),
                c.weightEps(), lossOnly.gpu(), null, GRAD_SCALE);
        assertBitEqual(c.name() + " perSample without gradPred " + Arrays.toString(shape), out.gpuLoss(),
                p.gpu.download(lossOnly.gpu()));
        return out;
    }

    private void check(Config c, Config coefsOf, int[] shape, long seed) {
        String what = c.name() + " " + Arrays.toString(shape);
        Outputs out = run(c, coefsOf, shape, seed, -1);
        assertRelative("consistencyLoss perSample " + what, out.cpuLoss(), out.gpuLoss());
        assertRelative("consistencyLoss gradPred " + what, out.cpuGrad(), out.gpuGrad());
        for (float l : out.gpuLoss()) {
            assertTrue(Float.isFinite(l) && l > 0, what + ": loss " + l + " should be finite and positive");
        }
    }

    private static void assertRelative(String what, float[] expected, float[] actual) {
        float[] tolerance = new float[expected.length];
        for (int i = 0; i < expected.length; i++) {
            tolerance[i] = RELATIVE_TOLERANCE * Math.abs(expected[i]) + Float.MIN_NORMAL;
        }
        assertWithin(what + " (relative tolerance " + RELATIVE_TOLERANCE + ")", expected, actual, tolerance);
    }

    @Test
    void facmMatchesCpu() {
        long seed = 4000;
        for (int[] shape : ConsistencyLossCases.SHAPES) {
            check(FACM, FACM, shape, seed += 10);
        }
        check(FACM, FACM, new int[] {32, 32, 16, 16}, seed + 10); // XL latents, batch 32
    }

    @Test
    void meanFlowMatchesCpu() {
        long seed = 4100;
        for (int[] shape : ConsistencyLossCases.SHAPES) {
            check(MEAN_FLOW, MEAN_FLOW, shape, seed += 10);
        }
    }

    @Test
    void sCmMatchesCpu() {
        long seed = 4200;
        for (int[] shape : ConsistencyLossCases.SHAPES) {
            check(SCM, SCM, shape, seed += 10);
        }
    }

    @Test
    void clipNormalizationAndWeightTogetherMatchCpu() {
        check(new Config("clip 0.5 + norm + power 0.5", 0.5f, 0.1f, 0.5f, 1e-3f), FACM, new int[] {3, 4, 16, 16},
                4300);
        check(new Config("no clip as -1, no weight", -1f, 0f, 0f, 0f), MEAN_FLOW, new int[] {2, 3, 33, 9}, 4301);
    }

    @Test
    void nanInVelocityGivesNanInItsSampleOnly() {
        int[] shape = {3, 4, 16, 16};
        int perSample = numel(shape) / 3;
        long seed = 4400;
        for (Config c : ConsistencyLossCases.ALL) {
            Outputs out = run(c, c, shape, seed += 10, perSample + 123); // one element of sample 1
            assertTrue(Float.isNaN(out.gpuLoss()[1]), c.name() + ": sample 1's loss is " + out.gpuLoss()[1]);
            assertFalse(Float.isNaN(out.gpuLoss()[0]) || Float.isNaN(out.gpuLoss()[2]),
                    c.name() + ": samples 0 and 2 stay finite: " + Arrays.toString(out.gpuLoss()));
            for (int j = 0; j < perSample; j++) {
                assertFalse(Float.isNaN(out.gpuGrad()[j]) || Float.isNaN(out.gpuGrad()[2 * perSample + j]),
                        c.name() + ": gradPred of samples 0 and 2 stays finite at " + j);
            }
            // NaN where the CPU has NaN (the whole of sample 1 for these configurations), the CPU's values elsewhere.
            assertRelative(c.name() + " perSample with a NaN velocity", out.cpuLoss(), out.gpuLoss());
            assertRelative(c.name() + " gradPred with a NaN velocity", out.cpuGrad(), out.gpuGrad());
        }
    }

    @Test
    void rejectsSharedOutputsAndBadScalars() {
        int[] shape = {2, 3, 4, 4};
        int n = numel(shape);
        var f = p.upload("pred", ConsistencyLossCases.inputs(4500, n), shape);
        var k = p.upload("coefs", ConsistencyLossCases.coefs(FACM, 2, 4501), 2, 3);
        var loss = p.poisoned("perSample", DType.F32, 2);
        var grad = p.poisoned("gradPred", DType.F32, shape);
        assertThrows(ShapeException.class, () -> gpu.consistencyLoss(f.gpu(), f.gpu(), f.gpu(), k.gpu(), 1f, 0f,
                0.5f, 1e-3f, loss.gpu(), f.gpu(), 1f));
        assertThrows(ShapeException.class, () -> gpu.consistencyLoss(f.gpu(), f.gpu(), f.gpu(), k.gpu(), 1f, 0f,
                0.5f, 1e-3f, p.poisoned("bad", DType.F32, 3).gpu(), grad.gpu(), 1f));
        assertThrows(IllegalArgumentException.class, () -> gpu.consistencyLoss(f.gpu(), f.gpu(), f.gpu(), k.gpu(),
                Float.NaN, 0f, 0.5f, 1e-3f, loss.gpu(), grad.gpu(), 1f));
        assertThrows(IllegalArgumentException.class, () -> gpu.consistencyLoss(f.gpu(), f.gpu(), f.gpu(), k.gpu(),
                1f, 0f, 0.5f, 0f, loss.gpu(), grad.gpu(), 1f));
    }
}
