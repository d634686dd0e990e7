package facm.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.zip.ZipFile;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The .npz container and the .npy 1.0 format, read back byte by byte (ZipFile checks each entry's CRC). */
class NpzWriterTest {

    @Test
    void writesNumpyArraysInAZip(@TempDir Path dir) throws Exception {
        float[] f = {1.5f, -2f, 0f, Float.MAX_VALUE, 3e-8f, 7f};
        Path file = dir.resolve("a.npz");
        NpzWriter.write(file, List.of(NpzWriter.Array.f32("arr_0", new int[] {2, 3}, f),
                NpzWriter.Array.i64("labels", new int[] {3}, new long[] {0, 9, -1L << 40}),
                NpzWriter.Array.u8("img", new int[] {1, 2, 2, 1}, new byte[] {0, 127, (byte) 128, (byte) 255})));
        try (ZipFile zip = new ZipFile(file.toFile())) {
            List<String> names = new ArrayList<>();
            Collections.list(zip.entries()).forEach(e -> names.add(e.getName()));
            assertEquals(List.of("arr_0.npy", "labels.npy", "img.npy"), names);
            NpzTestReader.Npy a = NpzTestReader.read(zip, "arr_0");
            assertEquals("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", a.header());
            float[] back = new float[6];
            a.data().asFloatBuffer().get(back);
            assertArrayEquals(f, back);
            NpzTestReader.Npy l = NpzTestReader.read(zip, "labels");
            assertEquals("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", l.header());
            assertEquals(9, l.data().getLong(8));
            assertEquals(-1L << 40, l.data().getLong(16));
            NpzTestReader.Npy u = NpzTestReader.read(zip, "img");
            assertEquals("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 2, 1), }", u.header());
            assertEquals((byte) 255, u.data().get(3));
        }
        assertTrue(Files.getPosixFilePermissions(file).contains(java.nio.file.attribute.PosixFilePermission.OTHERS_READ));
    }

    @Test
    void largeArraysAreWrittenInChunks(@TempDir Path dir) throws Exception {
        float[] f = new float[(1 << 18) * 3 + 17];
        for (int i = 0; i < f.length; i++) {
            f[i] = i * 0.25f;
        }
        Path file = dir.resolve("big.npz");
        NpzWriter.write(file, List.of(NpzWriter.Array.f32("x", new int[] {f.length}, f)));
        try (ZipFile zip = new ZipFile(file.toFile())) {
            float[] back = new float[f.length];
            NpzTestReader.read(zip, "x").data().asFloatBuffer().get(back);
            assertArrayEquals(f, back);
        }
    }

    @Test
    void badArraysAreRefusedAndLeaveNoFile(@TempDir Path dir) {
        assertThrows(IllegalArgumentException.class, () -> NpzWriter.Array.f32("x", new int[] {2, 2}, new float[3]));
        assertThrows(IllegalArgumentException.class, () -> NpzWriter.Array.f32("x/y", new int[] {1}, new float[1]));
        Path file = dir.resolve("dup.npz");
        assertThrows(IllegalArgumentException.class, () -> NpzWriter.write(file, List.of(
                NpzWriter.Array.f32("x", new int[] {1}, new float[1]), NpzWriter.Array.f32("x", new int[] {1},
                        new float[1]))));
        assertFalse(Files.exists(file));
    }

    @Test
    void samplesAreImagesNhwcOrLatentsNchw(@TempDir Path dir) throws Exception {
        // 2 samples, 3 channels, 1×2: channel c of pixel x holds (−1 + c·0.5 + x·0.25) (sample 1 negated)
        float[] nchw = new float[2 * 3 * 2];
        for (int i = 0; i < 2; i++) {
            for (int c = 0; c < 3; c++) {
                for (int x = 0; x < 2; x++) {
                    nchw[(i * 3 + c) * 2 + x] = (i == 0 ? 1 : -1) * (-1f + c * 0.5f + x * 0.25f);
                }
            }
        }
        Path img = dir.resolve("img.npz");
        SampleNpz.write(img, nchw, new int[] {4, 7}, 3, 1, 2);
        try (ZipFile zip = new ZipFile(img.toFile())) {
            NpzTestReader.Npy a = NpzTestReader.read(zip, "arr_0");
            assertEquals("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 2, 3), }", a.header());
            // sample 0, pixel x=1, channel 2: −1 + 1 + 0.25 = 0.25 → round(0.625·255) = 159
            assertEquals(159, a.data().get((1 * 3) + 2) & 0xFF);
            assertEquals(0, a.data().get(0) & 0xFF, "−1 → 0");
            assertEquals(255, a.data().get(6) & 0xFF, "sample 1 pixel 0 channel 0: +1 → 255");
            assertEquals(4, NpzTestReader.read(zip, "arr_1").data().getLong(0));
            assertEquals(7, NpzTestReader.read(zip, "labels").data().getLong(8));
        }
        Path lat = dir.resolve("lat.npz");
        SampleNpz.write(lat, new float[2 * 4 * 1 * 2], new int[] {0, 1}, 4, 1, 2);
        try (ZipFile zip = new ZipFile(lat.toFile())) {
            assertEquals("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 1, 2), }", NpzTestReader.read(zip, "arr_0").header());
        }
    }
}
