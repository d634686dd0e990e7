package facm.port;

import facm.cli.Main;
import facm.cuda.CudaTestSupport;
import facm.cuda.KernelLibrary;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * On the GPU host: port-check --quick passes on the SASS path and with --force-ptx (every module JIT-compiled from its
 * PTX), and writes its JSON. Skipped without a GPU or kernels (CudaTestSupport).
 */
@Tag("gpu")
class PortCheckGpuTest {
    @TempDir
    Path dir;

    @Test
    void portCheckPassesOnSass() throws IOException {
        CudaTestSupport.deviceWithKernels();
        Path json = dir.resolve("sass.json");
        assertEquals(0, Main.run("port-check", "--quick", "--reps", "3", "--out", json.toString()));
        String text = Files.readString(json);
        assertTrue(text.contains("\"passed\": true") && text.contains("\"kernel\": \"attention.bwd\""), text);
        assertTrue(text.contains("\"kernel_code\": \"SASS sm_"), text);
    }

    @Test
    void portCheckPassesOnJitCompiledPtx() throws IOException {
        CudaTestSupport.deviceWithKernels();
        Path json = dir.resolve("ptx.json");
        try {
            assertEquals(0, Main.run("port-check", "--quick", "--reps", "3", "--force-ptx", "--out", json.toString()));
        } finally {
            System.clearProperty(KernelLibrary.FORCE_PTX_PROPERTY);
        }
        String text = Files.readString(json);
        assertTrue(text.contains("\"passed\": true") && text.contains("\"kernel_code\": \"PTX compute_"), text);
    }

    @Test
    void autotuneWritesAnOverrideThatPortCheckReads() throws IOException {
        CudaTestSupport.deviceWithKernels();
        Path file = dir.resolve("tuning.table");
        assertEquals(0, Main.run("autotune", "--quick", "--only", "^unary\\.fwd$", "--out", file.toString()));
        assertTrue(Files.exists(file));
        Tuning.withOverrideFile(file); // parses
        assertEquals(0, Main.run("port-check", "--quick", "--reps", "3", "--only", "^unary\\.fwd", "--tuning",
                file.toString()));
        Tuning.install(Tuning.builtIn());
    }
}
