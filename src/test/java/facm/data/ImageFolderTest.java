package facm.data;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Skipped on a runtime without java.desktop (the GPU bundle's jlinked one), where image folders are refused. The
 * java.desktop calls live in {@link TestImages}, so this class still loads and verifies there and can skip.
 */
class ImageFolderTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void needsJavaDesktop() {
        assumeTrue(ModuleLayer.boot().findModule("java.desktop").isPresent(),
                "no java.desktop module in this runtime: image folders are not supported here");
    }

    private static float scaled(int v) {
        return (float) (v / 127.5 - 1);
    }

    @Test
    void readsRgbImagesInSortedClassFolders() throws IOException {
        TestImages.writeRgb(dir.resolve("zebra/a.png"), 4, 3);
        TestImages.writeRgb(dir.resolve("apple/b.PNG"), 4, 3);
        Files.writeString(dir.resolve("apple/notes.txt"), "ignored");
        Dataset d = Datasets.open(dir.toString());
        assertInstanceOf(ImageFolder.class, d);
        assertEquals(2, d.size());
        assertArrayEquals(new int[] {3, 3, 4}, d.sampleShape());
        assertEquals(List.of("apple", "zebra"), d.classNames());
        assertEquals(0, d.label(0));
        assertEquals(1, d.label(1));
        float[] x = new float[36];
        d.read(1, x, 0);
        int plane = 12;
        for (int y = 0; y < 3; y++) {
            for (int xx = 0; xx < 4; xx++) {
                assertEquals(scaled(10 * xx + y), x[y * 4 + xx]);
                assertEquals(scaled(255 - xx), x[plane + y * 4 + xx]);
                assertEquals((xx + y) % 2 == 0 ? 1f : -1f, x[2 * plane + y * 4 + xx]);
            }
        }
        assertTrue(d.describe().contains("2 images 3×3×4, 2 classes (apple, zebra)"), d.describe());
    }

    @Test
    void grayImagesGiveOneChannel() throws IOException {
        TestImages.writeGray(dir.resolve("0/x.png"), 5, 2);
        TestImages.writeGray(dir.resolve("1/y.png"), 5, 2);
        ImageFolder d = ImageFolder.open(dir);
        assertArrayEquals(new int[] {1, 2, 5}, d.sampleShape());
        float[] x = new float[10];
        d.read(0, x, 0);
        assertEquals(1f, x[0]);
        assertEquals(scaled(20 * 3 + 1), x[5 + 3]);
    }

    @Test
    void imagesThatDisagreeAreNamed() throws IOException {
        TestImages.writeRgb(dir.resolve("a/1.png"), 4, 3);
        TestImages.writeRgb(dir.resolve("b/2.png"), 3, 4);
        DataException size = assertThrows(DataException.class, () -> ImageFolder.open(dir));
        assertTrue(size.getMessage().contains("2.png is RGB 3×4") && size.getMessage().contains("1.png is RGB 4×3"),
                size.getMessage());

        TestImages.writeGray(dir.resolve("b/2.png"), 4, 3);
        DataException channels = assertThrows(DataException.class, () -> ImageFolder.open(dir));
        assertTrue(channels.getMessage().contains("2.png is gray 4×3"), channels.getMessage());

        Files.writeString(dir.resolve("b/2.png"), "not a png");
        DataException junk = assertThrows(DataException.class, () -> ImageFolder.open(dir));
        assertTrue(junk.getMessage().contains("cannot decode") && junk.getMessage().contains("2.png"),
                junk.getMessage());

        Files.delete(dir.resolve("b/2.png"));
        DataException empty = assertThrows(DataException.class, () -> ImageFolder.open(dir));
        assertTrue(empty.getMessage().contains("holds no .png"), empty.getMessage());
    }
}
