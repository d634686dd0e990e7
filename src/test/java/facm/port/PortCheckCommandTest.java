package facm.port;

import facm.cli.Main;
import facm.cuda.Cuda;
import facm.cuda.KernelBuildInfo;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

/** port-check and autotune refuse clearly where they cannot work; the error measure and the PTX rule. */
class PortCheckCommandTest {

    @Test
    void withoutAGpuPortCheckAndAutotuneFailWithOneClearLine() {
        assumeFalse(Cuda.available(), "this machine has a GPU");
        for (String cmd : List.of("port-check", "autotune")) {
            Run r = run(cmd, "--quick");
            assertNotEquals(0, r.code, cmd);
            assertTrue(r.err.startsWith("error: no CUDA GPU: "), r.err);
            assertEquals(1, r.err.strip().lines().count(), r.err);
        }
    }

    @Test
    void theCpuIsRefusedAsADeviceToCheck() {
        Run r = run("port-check", "--device", "cpu");
        assertNotEquals(0, r.code);
        assertTrue(r.err.contains("would compare the CPU with itself. Use --device cuda:N"), r.err);
        assertNotEquals(0, run("autotune", "--device", "cpu").code);
    }

    @Test
    void maxRelativeErrorIsRelativeToTheOutputsScale() {
        assertEquals(0.0, PortCheck.maxRelativeError(new float[] {1, -0f, 3}, new float[] {1, 0f, 3}));
        assertEquals(0.25, PortCheck.maxRelativeError(new float[] {4, 0}, new float[] {4, 1}), 1e-12);
        assertEquals(Double.POSITIVE_INFINITY, PortCheck.maxRelativeError(new float[] {1, 2}, new float[] {1, Float.NaN}));
        assertEquals(Double.POSITIVE_INFINITY, PortCheck.maxRelativeError(new float[] {1}, new float[] {1, 2}));
        assertEquals(0.0, PortCheck.maxRelativeError(new float[] {Float.NaN}, new float[] {Float.NaN}));
    }

    @Test
    void forcedPtxNeedsPtxFilesAndAnOldEnoughPtxTarget() {
        KernelBuildInfo with = new KernelBuildInfo(true, "", "nvcc", List.of(80, 90), 80, List.of("launch"), true);
        KernelBuildInfo without = new KernelBuildInfo(true, "", "nvcc", List.of(80, 90), 80, List.of("launch"), false);
        assertEquals("PTX compute_80 (JIT by the driver, forced)", with.forcedPtxPathFor(90));
        assertEquals("SASS sm_90", with.codePathFor(90));
        assertEquals("SASS sm_80", with.codePathFor(89));
        assertEquals("PTX compute_80 (JIT by the driver)", with.codePathFor(120));
        assertTrue(with.forcedPtxPathFor(75).startsWith("none (PTX compute_80 is newer than sm_75"));
        assertTrue(without.forcedPtxPathFor(90).startsWith("none (this jar has no <module>.ptx files"));
    }

    private record Run(int code, String err) {
    }

    private static Run run(String... args) {
        PrintStream oldErr = System.err;
        PrintStream oldOut = System.out;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try (PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8);
             PrintStream o = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8)) {
            System.setErr(e);
            System.setOut(o);
            int code = Main.run(args);
            return new Run(code, err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setErr(oldErr);
            System.setOut(oldOut);
        }
    }
}
