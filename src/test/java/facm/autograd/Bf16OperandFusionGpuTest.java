package facm.autograd;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.model.Presets;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Bf16OperandFusionTest} on CUDA: the bf16-output forms of rmsnorm_fwd, swiglu_fwd (fp32 gu), rmsnorm_jvp and
 * swiglu_jvp round the fp32 kernels' values once, so the fused BF16 training passes give the same loss inputs, JVP
 * tangents and gradients as casting in the linears, to the bit.
 */
@Tag("gpu")
class Bf16OperandFusionGpuTest {

    @ParameterizedTest(name = "{0} depth {1} batch {2} jvp {3}")
    @CsvSource({"tiny, 2, 3, false", "tiny, 2, 3, true", "B/1, 1, 2, false", "B/1, 1, 2, true"})
    void fusedOperandsAreBitIdenticalOnCuda(String preset, int depth, int batch, boolean jvp) {
        CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        Bf16OperandFusionTest.assertBitIdentical(gpu, Presets.get(preset).withDepth(depth), batch, jvp);
    }
}
