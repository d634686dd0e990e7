package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.tensor.Backend;
import org.junit.jupiter.api.AfterAll;

/** The torch.func.jvp fixture on the CPU backend (CI). */
class CpuJvpFixtureTest extends JvpFixtureChecks {
    private static final CpuBackend CPU = new CpuBackend();

    @Override
    Backend backend() {
        return CPU;
    }

    @AfterAll
    static void close() {
        CPU.close();
    }
}
