package facm.cli;

import facm.checkpoint.SafetensorsReader;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The command line end to end on the CPU, with the torch.save fixture of the PyTorch reference. */
class SampleAndConvertCommandTest {

    static Path fixture(Path dir, String name) throws Exception {
        Path p = dir.resolve(name);
        try (InputStream in = SampleAndConvertCommandTest.class.getResourceAsStream("/fixtures/" + name)) {
            Files.copy(in, p);
        }
        return p;
    }

    @Test
    void convertThenSampleIsDeterministicAndBatchIndependent(@TempDir Path dir) throws Exception {
        Path pt = fixture(dir, "tiny_ema.pt");
        Path st = dir.resolve("tiny.safetensors");
        assertEquals(0, Main.run("convert", "--in", pt.toString(), "--out", st.toString()));
        Path a = dir.resolve("a.safetensors");
        Path b = dir.resolve("b.safetensors");
        Path c = dir.resolve("c.safetensors");
        String[] common = {"sample", "--ckpt", st.toString(), "--model", "tiny", "--nfe", "2", "--n", "5", "--seed", "3",
                "--device", "cpu"};
        assertEquals(0, Main.run(concat(common, "--batch", "5", "--out", a.toString())));
        assertEquals(0, Main.run(concat(common, "--batch", "5", "--out", b.toString())));
        assertEquals(0, Main.run(concat(common, "--batch", "2", "--out", c.toString())));
        try (SafetensorsReader ra = SafetensorsReader.open(a); SafetensorsReader rb = SafetensorsReader.open(b);
             SafetensorsReader rc = SafetensorsReader.open(c)) {
            assertArrayEquals(new int[] {5, 1, 32, 32}, ra.shape("samples"));
            assertArrayEquals(ra.readFloats("samples"), rb.readFloats("samples"), "same seed, same output");
            assertArrayEquals(ra.readFloats("samples"), rc.readFloats("samples"), "batch size must not matter");
            assertArrayEquals(new int[] {0, 1, 2, 3, 4}, ra.readInts("labels"));
        }
        Path png = dir.resolve("grid.png");
        assertEquals(0, Main.run("sample", "--ckpt", pt.toString(), "--model", "tiny", "--n", "4", "--device", "cpu",
                "--classes", "1,2", "--out", png.toString()));
        byte[] head = java.util.Arrays.copyOf(Files.readAllBytes(png), 8);
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'}, head);
    }

    @Test
    void badInputIsOneLineAndExitCodeOne(@TempDir Path dir) throws Exception {
        Path pt = fixture(dir, "tiny_ema.pt");
        assertEquals(1, Main.run("sample", "--ckpt", pt.toString(), "--n", "1", "--device", "cpu", "--out",
                dir.resolve("x.safetensors").toString()), "no config in the file and no --model");
        assertEquals(1, Main.run("sample", "--ckpt", pt.toString(), "--model", "B/1", "--n", "1", "--device", "cpu",
                "--out", dir.resolve("x.safetensors").toString()), "wrong architecture for the weights");
        assertEquals(1, Main.run("sample", "--ckpt", dir.resolve("missing.pt").toString(), "--model", "tiny", "--n", "1",
                "--out", dir.resolve("x.png").toString()));
        assertTrue(!Files.exists(dir.resolve("x.safetensors")), "a failed run writes nothing");
    }

    private static String[] concat(String[] a, String... b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
