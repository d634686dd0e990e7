package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.tensor.Backend;
import org.junit.jupiter.api.AfterAll;

/** {@link GradientFixtureChecks} on the CPU backend. */
class CpuGradientFixtureTest extends GradientFixtureChecks {
    private static CpuBackend cpu;

    @Override
    Backend backend() {
        if (cpu == null) {
            cpu = new CpuBackend(2);
        }
        return cpu;
    }

    @AfterAll
    static void closeBackend() {
        if (cpu != null) {
            cpu.close();
            cpu = null;
        }
    }
}
