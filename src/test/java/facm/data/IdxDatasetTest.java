package facm.data;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class IdxDatasetTest {
    @TempDir
    Path dir;

    @Test
    void padsTo32AndScalesToMinusOneOne() throws IOException {
        IdxTestFiles.writeSplit(dir, IdxDataset.Split.TRAIN, 3, false);
        IdxDataset d = IdxDataset.open(dir, null);
        assertEquals(IdxDataset.Split.TRAIN, d.split());
        assertEquals(3, d.size());
        assertArrayEquals(new int[] {1, 32, 32}, d.sampleShape());
        assertEquals(10, d.numClasses());
        float[] x = new float[5 + 32 * 32];
        for (int i = 0; i < 3; i++) {
            d.read(i, x, 5);
            assertEquals(i, d.label(i));
            for (int r = 0; r < 32; r++) {
                for (int c = 0; c < 32; c++) {
                    boolean inside = r >= 2 && r < 30 && c >= 2 && c < 30;
                    float expected = inside ? (float) (IdxTestFiles.pixel(i, r - 2, c - 2) / 127.5 - 1) : -1f;
                    assertEquals(expected, x[5 + r * 32 + c], "image " + i + " at " + r + "," + c);
                }
            }
            assertEquals(1f, x[5 + 2 * 32 + 2], "255 maps to exactly 1");
        }
        assertTrue(d.describe().contains("3 images 1×32×32 (28×28 padded)"), d.describe());
    }

    @Test
    void gzippedAndPlainFilesGiveTheSameValues() throws IOException {
        Path plain = Files.createDirectory(dir.resolve("plain"));
        Path gz = Files.createDirectory(dir.resolve("gz"));
        IdxTestFiles.writeSplit(plain, IdxDataset.Split.TEST, 4, false);
        IdxTestFiles.writeSplit(gz, IdxDataset.Split.TEST, 4, true);
        IdxDataset a = IdxDataset.open(plain, null);
        IdxDataset b = IdxDataset.open(gz, null);
        assertEquals(IdxDataset.Split.TEST, a.split(), "no train files: the test split");
        float[] xa = new float[1024];
        float[] xb = new float[1024];
        for (int i = 0; i < 4; i++) {
            a.read(i, xa, 0);
            b.read(i, xb, 0);
            assertArrayEquals(xa, xb);
            assertEquals(a.label(i), b.label(i));
        }
    }

    @Test
    void gzipIsToldByMagicNotByName() throws IOException {
        // a gzipped file under the plain name still decodes
        byte[] images = IdxTestFiles.images(2, 28, 28);
        Path gz = IdxTestFiles.write(dir.resolve("x"), images, true);
        Files.move(gz, dir.resolve(IdxDataset.Split.TEST.imagesName()));
        IdxTestFiles.write(dir.resolve(IdxDataset.Split.TEST.labelsName()), IdxTestFiles.labels(2), false);
        assertEquals(2, IdxDataset.open(dir, IdxDataset.Split.TEST).size());
    }

    @Test
    void smallImagesAreCentred() throws IOException {
        IdxTestFiles.write(dir.resolve(IdxDataset.Split.TRAIN.imagesName()), IdxTestFiles.images(1, 5, 3), false);
        IdxTestFiles.write(dir.resolve(IdxDataset.Split.TRAIN.labelsName()), IdxTestFiles.labels(1), false);
        IdxDataset d = IdxDataset.open(dir, null);
        float[] x = new float[1024];
        d.read(0, x, 0);
        int top = 13;
        int left = 14;
        assertEquals(1f, x[top * 32 + left]);
        assertEquals(-1f, x[(top - 1) * 32 + left]);
        assertEquals(-1f, x[top * 32 + left - 1]);
        assertEquals((float) (IdxTestFiles.pixel(0, 4, 2) / 127.5 - 1), x[(top + 4) * 32 + left + 2]);
        assertEquals(-1f, x[(top + 5) * 32 + left + 2]);
        assertEquals(-1f, x[(top + 4) * 32 + left + 3]);
    }

    @Test
    void missingFilesNameWhatWasLookedFor() throws IOException {
        DataException none = assertThrows(DataException.class, () -> IdxDataset.open(dir, null));
        assertTrue(none.getMessage().contains("train-images-idx3-ubyte(.gz)")
                && none.getMessage().contains("t10k-images-idx3-ubyte(.gz)"), none.getMessage());
        DataException folder = assertThrows(DataException.class,
                () -> IdxDataset.open(dir.resolve("nope"), null));
        assertTrue(folder.getMessage().contains("does not exist"), folder.getMessage());

        IdxTestFiles.write(dir.resolve(IdxDataset.Split.TRAIN.imagesName()), IdxTestFiles.images(2, 28, 28), true);
        DataException labels = assertThrows(DataException.class, () -> IdxDataset.open(dir, null));
        assertTrue(labels.getMessage().contains("train-labels-idx1-ubyte(.gz)")
                && labels.getMessage().contains("found only train-images-idx3-ubyte.gz"), labels.getMessage());
        DataException test = assertThrows(DataException.class, () -> IdxDataset.open(dir, IdxDataset.Split.TEST));
        assertTrue(test.getMessage().contains("no IDX test split") && test.getMessage().contains("neither"),
                test.getMessage());
    }

    @Test
    void badMagicSwappedFilesTruncationAndCountMismatchAreReported() throws IOException {
        Path images = dir.resolve(IdxDataset.Split.TRAIN.imagesName());
        Path labels = dir.resolve(IdxDataset.Split.TRAIN.labelsName());

        IdxTestFiles.write(images, IdxTestFiles.labels(3), false);
        IdxTestFiles.write(labels, IdxTestFiles.labels(3), false);
        assertMessage("bad magic number 2049", "files swapped?");

        byte[] junk = IdxTestFiles.images(3, 28, 28);
        junk[3] = 7;
        IdxTestFiles.write(images, junk, false);
        assertMessage("bad magic number 2055", "start with 2051");

        byte[] full = IdxTestFiles.images(3, 28, 28);
        IdxTestFiles.write(images, Arrays.copyOf(full, full.length - 10), false);
        assertMessage("is truncated", "2352 bytes of data, the file has 2342");

        IdxTestFiles.write(images, Arrays.copyOf(full, 9), false);
        assertMessage("is truncated", "header has 16");

        Files.write(images, Arrays.copyOf(full, full.length + 4));
        assertMessage("has 4 bytes after the 2352");

        Path gz = IdxTestFiles.write(dir.resolve("tmp"), full, true);
        byte[] gzBytes = Files.readAllBytes(gz);
        Files.write(images, Arrays.copyOf(gzBytes, gzBytes.length / 2));
        assertMessage("truncated or corrupt gzip file");

        IdxTestFiles.write(images, full, false);
        IdxTestFiles.write(labels, IdxTestFiles.labels(2), false);
        assertMessage("holds 3 images but", "holds 2 labels");
    }

    private void assertMessage(String... parts) {
        DataException e = assertThrows(DataException.class, () -> IdxDataset.open(dir, IdxDataset.Split.TRAIN));
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + p + "' not in: " + e.getMessage());
        }
        assertTrue(e.getMessage().contains(dir.toString()), "the message names the file: " + e.getMessage());
        assertTrue(!e.getMessage().contains("\n"), "one line: " + e.getMessage());
    }

    @Test
    void bundledFashionMnistTestSplitHasTenThousandLabelledImages() {
        IdxDataset d = IdxDataset.bundledFashionMnist();
        assertEquals(10_000, d.size());
        assertEquals(10, d.numClasses());
        assertEquals("Ankle boot", d.classNames().get(9));
        int[] perClass = new int[10];
        for (int i = 0; i < d.size(); i++) {
            perClass[d.label(i)]++;
        }
        assertArrayEquals(new int[] {1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}, perClass);
        float[] x = new float[1024];
        d.read(0, x, 0);
        float min = Float.MAX_VALUE;
        float max = -Float.MAX_VALUE;
        for (float v : x) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        assertEquals(-1f, min);
        assertTrue(max > 0.5f && max <= 1f, "a real image has bright pixels: max " + max);
        assertEquals(-1f, x[0]);
        assertEquals(-1f, x[1023]);
        assertTrue(d.describe().startsWith("fashion-mnist (bundled test split): 10000 images"), d.describe());
    }

    @Test
    void debianFashionMnistFolderGivesTheTrainingSplit() {
        Path debian = Path.of(Datasets.DEBIAN_FASHION_MNIST);
        Assumptions.assumeTrue(Files.isDirectory(debian), "no " + debian + " (package dataset-fashion-mnist)");
        Dataset d = Datasets.open(debian.toString());
        assertEquals(60_000, d.size());
        assertEquals(IdxDataset.Split.TRAIN, ((IdxDataset) d).split());
    }
}
