package facm.autograd;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.tensor.Backend;
import org.junit.jupiter.api.Tag;

/** The torch.func.jvp fixture on the CUDA backend (JVP kernels, fused attention JVP). */
@Tag("gpu")
class CudaJvpFixtureTest extends JvpFixtureChecks {
    private static CudaBackend gpu;

    @Override
    Backend backend() {
        if (gpu == null) {
            gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        }
        return gpu;
    }
}
