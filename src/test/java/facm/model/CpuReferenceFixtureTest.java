package facm.model;

import facm.backend.cpu.CpuBackend;
import facm.tensor.Backend;
import org.junit.jupiter.api.AfterAll;

/** The PyTorch reference fixtures on the CPU backend (runs in CI). */
class CpuReferenceFixtureTest extends ReferenceFixtureChecks {
    private static final CpuBackend CPU = new CpuBackend();

    @Override
    Backend backend() {
        return CPU;
    }

    @Override
    double tolerance() {
        return 1e-5;
    }

    @AfterAll
    static void close() {
        CPU.close();
    }
}
