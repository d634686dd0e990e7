package facm.autograd;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.model.Presets;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link Bf16AttentionTrainingTest} on CUDA: FM and JVP passes with the tensor-core attention (bf16 heads from
 * qk_norm_rope_fwd_bf16out / qk_norm_rope_jvp_bf16out, bf16 attention output) against the fp32 attention, within the
 * same bf16 tolerances. Skipped where the kernel library has no tensor-core attention modules.
 */
@Tag("gpu")
class Bf16AttentionTrainingGpuTest {

    @ParameterizedTest(name = "{0} depth {1} batch {2} jvp {3}")
    @CsvSource({"tiny, 2, 3, false", "tiny, 2, 3, true", "B/1, 2, 2, false", "B/1, 2, 2, true",
            "XL/1, 1, 2, false", "XL/1, 1, 2, true"})
    void bf16AttentionTrainingStaysCloseOnCuda(String preset, int depth, int batch, boolean jvp) {
        CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        Bf16AttentionTrainingTest.assertCloseToF32Attention(gpu, Presets.get(preset).withDepth(depth), batch, jvp);
    }
}
