package facm.objectives;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.tensor.Backend;
import org.junit.jupiter.api.Tag;

/**
 * {@link ConsistencyFixtureTest} on the CUDA backend (cuBLASLt GEMMs, JVP and backward kernels, the consistency-loss
 * kernel); skips without a GPU.
 */
@Tag("gpu")
class CudaConsistencyFixtureTest extends ConsistencyFixtureTest {
    private static CudaBackend gpu;

    @Override
    Backend backend() {
        if (gpu == null) {
            gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        }
        return gpu;
    }

    /** The CUDA FM gradient fixture test's FP32 bounds: fp32 everywhere, only the summation orders differ. */
    @Override
    double[] fp32Tolerances() {
        return new double[] {1e-5, 2e-3, 2e-4};
    }
}
