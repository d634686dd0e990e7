package facm.io;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.zip.CRC32;
import java.util.zip.Deflater;
import java.util.zip.DeflaterOutputStream;

/**
 * Writes 8-bit grayscale or RGB PNG files (the chunk format of the PNG specification: IHDR, IDAT with zlib data and
 * filter byte 0 per row, IEND). Hand-written so the runtime needs no java.desktop module (ImageIO).
 */
public final class PngWriter {
    private PngWriter() {
    }

    /**
     * Writes {@code pixels} (row-major, {@code channels} interleaved values per pixel, 1 = gray, 3 = RGB) atomically:
     * a temporary file in the same folder is renamed over the target.
     */
    public static void write(Path file, int width, int height, int channels, byte[] pixels) throws IOException {
        if (channels != 1 && channels != 3) {
            throw new IllegalArgumentException("PNG writer supports 1 or 3 channels, got " + channels);
        }
        if (pixels.length != width * height * channels) {
            throw new IllegalArgumentException("PNG " + width + "x" + height + "x" + channels + " needs "
                    + width * height * channels + " bytes, got " + pixels.length);
        }
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, file.getFileName().toString(), ".tmp");
        try (OutputStream out = Files.newOutputStream(tmp)) {
            out.write(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'});
            ByteArrayOutputStream ihdr = new ByteArrayOutputStream();
            DataOutputStream h = new DataOutputStream(ihdr);
            h.writeInt(width);
            h.writeInt(height);
            h.writeByte(8);
            h.writeByte(channels == 1 ? 0 : 2);
            h.writeByte(0);
            h.writeByte(0);
            h.writeByte(0);
            chunk(out, "IHDR", ihdr.toByteArray());
            ByteArrayOutputStream raw = new ByteArrayOutputStream();
            try (DeflaterOutputStream z = new DeflaterOutputStream(raw, new Deflater(6))) {
                int stride = width * channels;
                for (int y = 0; y < height; y++) {
                    z.write(0);
                    z.write(pixels, y * stride, stride);
                }
            }
            chunk(out, "IDAT", raw.toByteArray());
            chunk(out, "IEND", new byte[0]);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        try {
            // createTempFile makes the file owner-only; a picture is for everyone who can read the folder
            Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        } catch (UnsupportedOperationException e) {
            // not a POSIX file system: keep the defaults
        }
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    private static void chunk(OutputStream out, String type, byte[] data) throws IOException {
        DataOutputStream d = new DataOutputStream(out);
        byte[] t = type.getBytes(StandardCharsets.US_ASCII);
        d.writeInt(data.length);
        d.write(t);
        d.write(data);
        CRC32 crc = new CRC32();
        crc.update(t);
        crc.update(data);
        d.writeInt((int) crc.getValue());
    }

    /**
     * A grid of images {@code [N, C, H, W]} (C = 1 or 3, values in [-1, 1]) laid out {@code cols} per row with a 2-pixel
     * border, mapped to bytes by (v + 1)/2 · 255, clamped and rounded.
     */
    public static void writeGrid(Path file, float[] images, int n, int c, int h, int w, int cols) throws IOException {
        int rows = (n + cols - 1) / cols;
        int pad = 2;
        int gw = cols * (w + pad) + pad;
        int gh = rows * (h + pad) + pad;
        byte[] px = new byte[gw * gh * c];
        for (int i = 0; i < n; i++) {
            int ox = pad + (i % cols) * (w + pad);
            int oy = pad + (i / cols) * (h + pad);
            for (int ch = 0; ch < c; ch++) {
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        float v = images[((i * c + ch) * h + y) * w + x];
                        int b = Math.round((Math.max(-1f, Math.min(1f, v)) + 1f) * 0.5f * 255f);
                        px[((oy + y) * gw + ox + x) * c + ch] = (byte) b;
                    }
                }
            }
        }
        write(file, gw, gh, c, px);
    }
}
