package facm.io;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * Writes numpy {@code .npz} files: a zip archive of {@code NAME.npy} entries, stored uncompressed as
 * {@code np.savez} does. Each {@code .npy} is format version 1.0: the magic {@code \x93NUMPY}, version bytes 1 0, a
 * little-endian uint16 header length, then an ASCII dict {@code {'descr': '<f4', 'fortran_order': False,
 * 'shape': (N, H, W, C), }} padded with spaces and ended by a newline so the data starts at a multiple of 64 bytes,
 * then the values in C order, little-endian. Arrays of more than 4 GiB get ZIP64 records from {@link ZipOutputStream}.
 */
public final class NpzWriter {
    /** numpy's descr strings: little-endian float32, unsigned byte, little-endian int64. */
    public enum Kind {
        F32("<f4", 4), U8("|u1", 1), I64("<i8", 8);

        final String descr;
        final int bytes;

        Kind(String descr, int bytes) {
            this.descr = descr;
            this.bytes = bytes;
        }
    }

    /** One array: its name in the archive (without .npy), shape and values (one of the three arrays is set). */
    public record Array(String name, Kind kind, int[] shape, float[] f32, byte[] u8, long[] i64) {
        public Array {
            long numel = 1;
            for (int d : shape) {
                if (d < 0) {
                    throw new IllegalArgumentException("array '" + name + "' has a negative dimension");
                }
                numel *= d;
            }
            long have = kind == Kind.F32 ? f32.length : kind == Kind.U8 ? u8.length : i64.length;
            if (have != numel) {
                throw new IllegalArgumentException("array '" + name + "' of shape " + java.util.Arrays.toString(shape)
                        + " needs " + numel + " values, got " + have);
            }
            if (!name.matches("[A-Za-z0-9_]+")) {
                throw new IllegalArgumentException("array name '" + name + "' must be letters, digits and _");
            }
        }

        public static Array f32(String name, int[] shape, float[] values) {
            return new Array(name, Kind.F32, shape.clone(), values, null, null);
        }

        public static Array u8(String name, int[] shape, byte[] values) {
            return new Array(name, Kind.U8, shape.clone(), null, values, null);
        }

        public static Array i64(String name, int[] shape, long[] values) {
            return new Array(name, Kind.I64, shape.clone(), null, null, values);
        }

        long dataBytes() {
            long n = kind == Kind.F32 ? f32.length : kind == Kind.U8 ? u8.length : i64.length;
            return n * kind.bytes;
        }
    }

    private NpzWriter() {
    }

    /** Writes the arrays to {@code file} atomically (a temporary file in the same folder is renamed over it). */
    public static void write(Path file, List<Array> arrays) throws IOException {
        Set<String> names = new HashSet<>();
        for (Array a : arrays) {
            if (!names.add(a.name())) {
                throw new IllegalArgumentException("array name '" + a.name() + "' appears twice");
            }
        }
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, file.getFileName().toString(), ".tmp");
        try (ZipOutputStream zip = new ZipOutputStream(new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 16))) {
            for (Array a : arrays) {
                byte[] header = header(a);
                ZipEntry e = new ZipEntry(a.name() + ".npy");
                e.setMethod(ZipEntry.STORED);
                long size = header.length + a.dataBytes();
                e.setSize(size);
                e.setCompressedSize(size);
                CRC32 crc = new CRC32();
                crc.update(header);
                writeData(a, crc::update);
                e.setCrc(crc.getValue());
                zip.putNextEntry(e);
                zip.write(header);
                writeData(a, zip::write);
                zip.closeEntry();
            }
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            throw e;
        }
        try {
            Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        } catch (UnsupportedOperationException e) {
            // not a POSIX file system: keep the defaults
        }
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** The .npy magic, version 1.0, header length and the padded header dict. */
    static byte[] header(Array a) {
        StringBuilder shape = new StringBuilder("(");
        for (int i = 0; i < a.shape().length; i++) {
            shape.append(a.shape()[i]).append(i == 0 && a.shape().length == 1 ? "," : i < a.shape().length - 1 ? ", " : "");
        }
        shape.append(')');
        String dict = "{'descr': '" + a.kind().descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
        int prefix = 10; // magic (6) + version (2) + header length (2)
        int total = prefix + dict.length() + 1;
        int padded = (total + 63) / 64 * 64;
        if (padded - prefix > 0xFFFF) {
            throw new IllegalArgumentException("the .npy header of '" + a.name() + "' is too long for version 1.0");
        }
        String h = dict + " ".repeat(padded - total) + "\n";
        ByteBuffer b = ByteBuffer.allocate(padded).order(ByteOrder.LITTLE_ENDIAN);
        b.put((byte) 0x93).put("NUMPY".getBytes(StandardCharsets.US_ASCII)).put((byte) 1).put((byte) 0);
        b.putShort((short) (padded - prefix));
        b.put(h.getBytes(StandardCharsets.US_ASCII));
        return b.array();
    }

    @FunctionalInterface
    private interface Sink {
        void accept(byte[] bytes, int offset, int length) throws IOException;
    }

    /** The values little-endian, in chunks of 1 MiB (the arrays may be larger than one byte[]). */
    private static void writeData(Array a, Sink sink) throws IOException {
        if (a.kind() == Kind.U8) {
            sink.accept(a.u8(), 0, a.u8().length);
            return;
        }
        int chunk = 1 << 18;
        ByteBuffer b = ByteBuffer.allocate(chunk * 8).order(ByteOrder.LITTLE_ENDIAN);
        int n = a.kind() == Kind.F32 ? a.f32().length : a.i64().length;
        for (int start = 0; start < n; start += chunk) {
            int end = Math.min(n, start + chunk);
            b.clear();
            if (a.kind() == Kind.F32) {
                b.asFloatBuffer().put(a.f32(), start, end - start);
            } else {
                b.asLongBuffer().put(a.i64(), start, end - start);
            }
            sink.accept(b.array(), 0, (end - start) * a.kind().bytes);
        }
    }
}
