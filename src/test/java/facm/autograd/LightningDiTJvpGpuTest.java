package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole-model JVP (LightningDiT.jvp) on CUDA against the CPU backend, same Philox weights and inputs, FP32, on
 * the tiny preset and on a config with XL/1's head size (dh 72, 256 tokens), without a tape (fused JVP ops) and with
 * one (primal through the recording ops). Bound: max|cuda − cpu| / max|cpu| ≤ 1e-4 for the primal and the tangent
 * (fp32 with different summation orders in GEMMs and attention; the plain forward agrees to ~1e-5).
 */
@Tag("gpu")
class LightningDiTJvpGpuTest {
    private static final ModelConfig DH72 = new ModelConfig("dh72", 2, 288, 4, 1, 16, 32, 1000, true, true, false);
    private static final double TOL = 1e-4;

    private static CudaBackend gpu;

    private static synchronized CudaBackend gpu() {
        if (gpu == null) {
            gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        }
        return gpu;
    }

    @AfterAll
    static void closeBackend() {
        if (gpu != null) {
            gpu.close();
            gpu = null;
        }
    }

    @Test
    void cudaPrimalAndTangentMatchTheCpu() {
        CudaBackend gpu = gpu();
        for (ModelConfig c : new ModelConfig[] {Presets.get("tiny"), DH72}) {
            try (CpuBackend cpu = new CpuBackend();
                 ModelWeights wCpu = ModelWeights.philox(c, cpu, 1234);
                 ModelWeights wGpu = ModelWeights.philox(c, gpu, 1234);
                 LightningDiTJvpTest.Inputs inCpu = LightningDiTJvpTest.Inputs.create(cpu, c);
                 LightningDiTJvpTest.Inputs inGpu = LightningDiTJvpTest.Inputs.create(gpu, c)) {
                LightningDiT mCpu = new LightningDiT(wCpu);
                LightningDiT mGpu = new LightningDiT(wGpu);
                float[][] ref = LightningDiTJvpTest.jvpValues(cpu, mCpu, inCpu, true, true, null);
                float[][] fused = LightningDiTJvpTest.jvpValues(gpu, mGpu, inGpu, true, true, null);
                compare(c.name() + " fused", fused, ref);
                try (Gradients g = new Gradients(wGpu); Tape tape = Tape.forParameters(wGpu, g)) {
                    compare(c.name() + " with tape", LightningDiTJvpTest.jvpValues(gpu, mGpu, inGpu, true, true, tape),
                            ref);
                }
            }
        }
    }

    private static void compare(String what, float[][] got, float[][] ref) {
        String[] part = {"primal", "tangent"};
        for (int p = 0; p < 2; p++) {
            double err = 0;
            double scale = 0;
            for (int i = 0; i < ref[p].length; i++) {
                err = Math.max(err, Float.isFinite(got[p][i]) ? Math.abs(got[p][i] - ref[p][i])
                        : Double.POSITIVE_INFINITY);
                scale = Math.max(scale, Math.abs(ref[p][i]));
            }
            double rel = err / scale;
            System.out.printf("[LightningDiTJvpGpuTest] %s %s: max|cuda − cpu|/max|cpu| %.3e%n", what, part[p], rel);
            assertTrue(rel <= TOL, what + " " + part[p] + ": CUDA differs from the CPU by " + rel + " (bound " + TOL
                    + ")");
        }
    }
}
