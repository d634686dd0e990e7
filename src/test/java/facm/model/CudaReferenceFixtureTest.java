package facm.model;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.tensor.Backend;
import org.junit.jupiter.api.Tag;

/** The PyTorch reference fixtures on the CUDA backend (fp32 GEMMs on cuBLASLt, our attention kernel). */
@Tag("gpu")
class CudaReferenceFixtureTest extends ReferenceFixtureChecks {
    private static CudaBackend gpu;

    @Override
    Backend backend() {
        if (gpu == null) {
            gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        }
        return gpu;
    }

    @Override
    double tolerance() {
        return 2e-5;
    }
}
