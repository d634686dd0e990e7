package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.ArenaStats;
import facm.cuda.CudaDevice;
import facm.cuda.CudaTestSupport;
import facm.data.Batch;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.objectives.FlowMatchingObjective;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole model's parameter gradients on CUDA against the CPU backend (same Philox weights and inputs on both), in
 * FP32 and BF16, for the tiny preset and for a config with XL/1's head size (dh 72) and token count (256); plus the FM
 * objective on both backends and the arena balance of a training step (the tape frees all it saved).
 */
@Tag("gpu")
class LightningDiTGradientGpuTest {
    /** Depth 2, D 288, 4 heads of 72, patch 1 on 32×16×16 latents (256 tokens), 1000 classes: XL/1's head shape. */
    private static final ModelConfig DH72 = new ModelConfig("dh72", 2, 288, 4, 1, 16, 32, 1000, true, true, false);

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
    void cudaGradientsMatchTheCpuInFp32AndBf16() {
        CudaBackend gpu = gpu();
        for (ModelConfig c : new ModelConfig[] {Presets.get("tiny"), DH72}) {
            for (GemmPrecision p : new GemmPrecision[] {GemmPrecision.FP32, GemmPrecision.BF16}) {
                try (CpuBackend cpu = new CpuBackend();
                     ModelGradientCheck onCpu = new ModelGradientCheck(cpu, c, 1234, p);
                     ModelGradientCheck onGpu = new ModelGradientCheck(gpu, c, 1234, p);
                     Gradients gCpu = new Gradients(onCpu.weights);
                     Gradients gGpu = new Gradients(onGpu.weights)) {
                    onCpu.backward(gCpu);
                    onGpu.backward(gGpu);
                    Map<String, Double> errs = ModelGradientCheck.compare(gpu, gGpu, cpu, gCpu);
                    double worst = errs.values().stream().mapToDouble(Double::doubleValue).max().orElse(0);
                    String worstKey = errs.entrySet().stream().max(Map.Entry.comparingByValue()).orElseThrow().getKey();
                    System.out.printf("[LightningDiTGradientGpuTest] %s %s: worst per-tensor max|cuda − cpu|/max|cpu| "
                            + "%.3e (%s)%n", c.name(), p, worst, worstKey);
                    double tol = p == GemmPrecision.FP32 ? 1e-3 : 5e-2; // bf16: rare rounding flips of the casts
                    errs.forEach((k, e) -> assertTrue(e <= tol, c.name() + " " + p + ": gradient of " + k
                            + " differs from the CPU by " + e + " (bound " + tol + ")"));
                }
            }
        }
    }

    @Test
    void fmObjectiveMatchesTheCpuAndATrainingStepLeavesNothingAllocated() {
        CudaBackend gpu = gpu();
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        ModelConfig c = Presets.get("tiny").withData(16, 4, 10);
        float[] images = new float[4 * 4 * 16 * 16];
        for (int i = 0; i < images.length; i++) {
            images[i] = Philox.normal(6, i);
        }
        Batch batch = new Batch(images, new int[] {4, 4, 16, 16}, new int[] {1, 2, 3, 4}, 4);
        try (CpuBackend cpu = new CpuBackend();
             ModelWeights wCpu = ModelWeights.philox(c, cpu, 1234);
             ModelWeights wGpu = ModelWeights.philox(c, gpu, 1234);
             Gradients gCpu = new Gradients(wCpu);
             Gradients gGpu = new Gradients(wGpu)) {
            FlowMatchingObjective fmCpu = new FlowMatchingObjective(3, GemmPrecision.FP32,
                    FlowMatchingObjective.Options.defaults());
            FlowMatchingObjective fmGpu = new FlowMatchingObjective(3, GemmPrecision.FP32,
                    FlowMatchingObjective.Options.defaults());
            float lossCpu = fmCpu.lossAndGradients(wCpu, gCpu, batch, 11);
            fmGpu.lossAndGradients(wGpu, gGpu, batch, 10); // warm the caches (cuBLASLt plans, scratch buffers)
            gGpu.zero();
            gpu.synchronize();
            ArenaStats before = device.arena().stats();
            float lossGpu = fmGpu.lossAndGradients(wGpu, gGpu, batch, 11);
            gpu.synchronize();
            ArenaStats after = device.arena().stats();
            System.out.printf("[LightningDiTGradientGpuTest] FM loss cpu %.7f cuda %.7f; arena in use %d -> %d bytes%n",
                    lossCpu, lossGpu, before.inUseBytes(), after.inUseBytes());
            assertEquals(lossCpu, lossGpu, 1e-5 * Math.abs(lossCpu));
            assertEquals(before.inUseBytes(), after.inUseBytes(), "a training step must free everything it allocated");
            Map<String, Double> errs = ModelGradientCheck.compare(gpu, gGpu, cpu, gCpu);
            errs.forEach((k, e) -> assertTrue(e <= 1e-3, "FM gradient of " + k + " differs from the CPU by " + e));
        }
    }
}
