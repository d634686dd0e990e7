package facm.backend.cuda;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.TestInstance;

/**
 * The life cycle every CPU-vs-GPU test class shares: one {@link GpuCpuPair} per class (opened by the first test,
 * closed after the last), the tensors a test made closed after it. Subclasses build their op objects in
 * {@link #opened()} and hand scratch back in {@link #closing()}.
 */
@Tag("gpu")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class GpuCpuPairTestBase {
    GpuCpuPair p;

    /** Per test, so that without a GPU each test reports itself skipped (an abort in @BeforeAll hides them). */
    @BeforeEach
    final void openPair() {
        if (p == null) {
            p = GpuCpuPair.open();
            opened();
        }
    }

    /** Runs once, right after the pair opened: where a subclass takes its op objects from the two backends. */
    void opened() {
    }

    @AfterEach
    final void closePairTensors() {
        if (p != null) {
            p.closeTensors();
        }
    }

    @AfterAll
    final void closePair() {
        if (p != null) {
            closing();
            p.close();
        }
    }

    /** Runs once before the backends close: where a subclass returns op scratch to the arena. */
    void closing() {
    }
}
