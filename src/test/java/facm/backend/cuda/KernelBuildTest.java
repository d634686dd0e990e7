package facm.backend.cuda;

import facm.cuda.KernelBuildInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * native/build-kernels.sh and what it put on the class path; runs without a GPU. When the kernels were built, every
 * kernels/*.cu is a module whose fatbin holds SASS for each listed architecture and PTX for the lowest (the check
 * cuobjdump --list-elf/--list-ptx would do, read from the fatbin container header directly).
 */
class KernelBuildTest {
    private static final Path KERNELS = Path.of("kernels");
    private static final Path SCRIPT = Path.of("native", "build-kernels.sh");

    @Test
    void builtModulesAreTheKernelSourcesWithSassAndPtx() throws IOException {
        KernelBuildInfo info = KernelBuildInfo.read();
        assumeTrue(info.built(), () -> "kernels not built here: " + info.reason());
        assertTrue(info.nvcc().contains("release"), info.nvcc());
        if (Files.isDirectory(KERNELS)) {
            try (Stream<Path> files = Files.list(KERNELS)) {
                List<String> sources = files.map(f -> f.getFileName().toString()).filter(f -> f.endsWith(".cu"))
                        .map(f -> f.substring(0, f.length() - 3)).sorted().toList();
                assertEquals(sources, info.modules().stream().sorted().toList(), "modules vs kernels/*.cu");
            }
        }
        assertTrue(info.modules().containsAll(List.of("elementwise", "reduce", "softmax", "random", "launch")),
                info.modules().toString());
        for (String m : info.modules()) {
            byte[] image;
            try (InputStream in = KernelBuildTest.class.getResourceAsStream("/facm/kernels/" + m + ".fatbin")) {
                assertNotNull(in, m + ".fatbin missing from the class path");
                image = in.readAllBytes();
            }
            List<String> entries = fatbinEntries(image);
            for (int arch : info.sass()) {
                assertTrue(entries.contains("ELF sm_" + arch), m + ".fatbin lacks SASS sm_" + arch + ": " + entries);
            }
            assertTrue(entries.contains("PTX sm_" + info.ptx()), m + ".fatbin lacks PTX " + info.ptx() + ": " + entries);
        }
    }

    /**
     * The entries of a fatbin as "ELF sm_90" / "PTX sm_80". Container: u32 magic 0xBA55ED50, u16 version, u16 header
     * size, u64 payload size; each entry: u16 kind (1 PTX, 2 ELF), u16, u32 entry header size, u64 payload size, ...,
     * u32 architecture at byte 28.
     */
    static List<String> fatbinEntries(byte[] image) {
        ByteBuffer b = ByteBuffer.wrap(image).order(ByteOrder.LITTLE_ENDIAN);
        List<String> entries = new ArrayList<>();
        int pos = 0;
        while (pos + 16 <= image.length) {
            assertEquals(0xBA55ED50, b.getInt(pos), "fatbin magic at " + pos);
            int headerSize = Short.toUnsignedInt(b.getShort(pos + 6));
            long size = b.getLong(pos + 8);
            long end = pos + headerSize + size;
            long e = pos + headerSize;
            while (e < end) {
                int kind = Short.toUnsignedInt(b.getShort((int) e));
                int entryHeader = b.getInt((int) e + 4);
                long payload = b.getLong((int) e + 8);
                int arch = b.getInt((int) e + 28);
                entries.add((kind == 1 ? "PTX" : kind == 2 ? "ELF" : "kind" + kind) + " sm_" + arch);
                e += entryHeader + payload;
            }
            pos = (int) end;
        }
        return entries;
    }

    private record Run(int exit, String output, Properties props) {
    }

    private static Run runScript(Path out, String nvcc, boolean required) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("bash", SCRIPT.toString(), KERNELS.toString(), out.toString(), "80,90"));
        cmd.add(nvcc);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("FACM_KERNEL_BUILD_DIR", out.resolve("state").toString());
        if (required) {
            pb.environment().put("FACM_KERNELS_REQUIRED", "1");
        }
        Process proc = pb.start();
        String output = new String(proc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(proc.waitFor(60, TimeUnit.SECONDS), "build-kernels.sh did not finish");
        Properties props = new Properties();
        Path file = out.resolve("kernels.properties");
        if (Files.exists(file)) {
            try (InputStream in = Files.newInputStream(file)) {
                props.load(in);
            }
        }
        return new Run(proc.exitValue(), output, props);
    }

    @Test
    void noneMeansACpuOnlyBuild(@TempDir Path out) throws Exception {
        assumeTrue(Files.isRegularFile(SCRIPT) && Files.isDirectory(KERNELS), "not run from the project directory");
        Run r = runScript(out, "none", false);
        assertEquals(0, r.exit(), r.output());
        assertEquals("false", r.props().getProperty("built"), r.output());
        assertTrue(r.props().getProperty("reason").contains("disabled"), r.props().toString());
        assertEquals("", r.props().getProperty("modules"));
        assertEquals("80,90", r.props().getProperty("sass"));
    }

    @Test
    void anExplicitMissingNvccIsReportedNotReplaced(@TempDir Path out) throws Exception {
        assumeTrue(Files.isRegularFile(SCRIPT) && Files.isDirectory(KERNELS), "not run from the project directory");
        Run r = runScript(out, "/nonexistent/nvcc", false);
        assertEquals(0, r.exit(), r.output());
        assertEquals("false", r.props().getProperty("built"), r.output());
        assertTrue(r.props().getProperty("reason").contains("/nonexistent/nvcc"), r.props().toString());
        Run strict = runScript(out.resolve("strict"), "/nonexistent/nvcc", true);
        assertNotEquals(0, strict.exit(), strict.output());
        assertTrue(strict.output().contains("FACM_KERNELS_REQUIRED"), strict.output());
    }
}
