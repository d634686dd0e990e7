package facm.data;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;

/** Writes tiny IDX files for tests: images whose pixel (i, r, c) is a known function, and labels i mod 10. */
final class IdxTestFiles {
    private IdxTestFiles() {
    }

    /** Pixel value of image i at (r, c): covers 0 and 255 in every image. */
    static int pixel(int i, int r, int c) {
        return (r == 0 && c == 0) ? 255 : (i * 37 + r * 11 + c * 3) % 255;
    }

    static byte[] images(int count, int rows, int cols) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        header(out, IdxDataset.IMAGES_MAGIC, count, rows, cols);
        for (int i = 0; i < count; i++) {
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    out.write(pixel(i, r, c));
                }
            }
        }
        return out.toByteArray();
    }

    static byte[] labels(int count) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        header(out, IdxDataset.LABELS_MAGIC, count);
        for (int i = 0; i < count; i++) {
            out.write(i % 10);
        }
        return out.toByteArray();
    }

    static void header(ByteArrayOutputStream out, int magic, int... dims) {
        writeInt(out, magic);
        for (int d : dims) {
            writeInt(out, d);
        }
    }

    private static void writeInt(ByteArrayOutputStream out, int v) {
        out.write(v >>> 24);
        out.write(v >>> 16);
        out.write(v >>> 8);
        out.write(v);
    }

    static Path write(Path file, byte[] bytes, boolean gzip) throws IOException {
        Path target = gzip ? file.resolveSibling(file.getFileName() + ".gz") : file;
        try (OutputStream out = gzip ? new GZIPOutputStream(Files.newOutputStream(target))
                : Files.newOutputStream(target)) {
            out.write(bytes);
        }
        return target;
    }

    /** Writes a split (images + labels) of {@code count} 28×28 images into {@code folder}. */
    static void writeSplit(Path folder, IdxDataset.Split split, int count, boolean gzip) throws IOException {
        write(folder.resolve(split.imagesName()), images(count, 28, 28), gzip);
        write(folder.resolve(split.labelsName()), labels(count), gzip);
    }
}
