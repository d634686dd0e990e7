package facm.model;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.tensor.GemmPrecision;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static facm.model.LightningDiTBf16Test.REL_L2;
import static facm.model.LightningDiTBf16Test.relL2;
import static facm.model.LightningDiTBf16Test.run;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The tape-less BF16 forward with bf16 activations on CUDA (bf16 kernels, fused bias epilogue, cached bf16 weights;
 * f32 attention until bf16 attention is switched on) against the CPU: against the CPU's fp32 forward within the
 * bf16 tolerance of {@link LightningDiTBf16Test} (rel L2 2e-2), and against the CPU's own bf16-activation forward
 * (the same roundings, fp32 against fp64 arithmetic in between: a value near a rounding boundary may round the other
 * way and carry on) within the same bound.
 */
@Tag("gpu")
class LightningDiTBf16GpuTest {

    @ParameterizedTest(name = "{0} depth {1} batch {2}")
    @CsvSource({"tiny, 2, 3", "B/1, 2, 2", "XL/1, 1, 2"})
    void bf16ActivationsOnCudaMatchTheCpu(String preset, int depth, int batch) {
        ModelConfig c = Presets.get(preset).withDepth(depth);
        CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        try (CpuBackend cpu = new CpuBackend()) {
            float[] cpuF32 = run(cpu, c, batch, 31, m -> m.precision(GemmPrecision.FP32));
            float[] cpuBf16 = run(cpu, c, batch, 31, m -> m.precision(GemmPrecision.BF16));
            float[] gpuBf16 = run(gpu, c, batch, 31, m -> m.precision(GemmPrecision.BF16).cacheBf16Weights(true));
            double vsF32 = relL2(cpuF32, gpuBf16);
            double vsBf16 = relL2(cpuBf16, gpuBf16);
            System.out.printf("[LightningDiTBf16GpuTest] %s depth %d: CUDA bf16 activations vs CPU fp32 rel L2 %.2e,"
                    + " vs CPU bf16 activations %.2e (CPU bf16 vs fp32 %.2e)%n", preset, depth, vsF32, vsBf16,
                    relL2(cpuF32, cpuBf16));
            assertTrue(vsF32 < REL_L2, preset + ": vs fp32 rel L2 " + vsF32);
            assertTrue(vsBf16 < REL_L2, preset + ": vs CPU bf16 rel L2 " + vsBf16);
        }
    }
}
