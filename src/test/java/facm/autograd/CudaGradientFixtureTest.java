package facm.autograd;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.tensor.Backend;
import org.junit.jupiter.api.Tag;

/** {@link GradientFixtureChecks} on the CUDA backend (cuBLASLt GEMMs, our backward kernels). */
@Tag("gpu")
class CudaGradientFixtureTest extends GradientFixtureChecks {
    private static CudaBackend gpu;

    @Override
    Backend backend() {
        if (gpu == null) {
            gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        }
        return gpu;
    }

    /** Same bounds as the CPU: fp32 everywhere, only the summation orders differ. */
    @Override
    double[] fp32Tolerances() {
        return new double[] {1e-5, 2e-3, 2e-4};
    }
}
