package facm.checkpoint;

import facm.tensor.Shapes;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes safetensors files atomically: everything goes to a temporary file in the target's folder, which is fsynced
 * and then renamed over the target, so a crash leaves either the old file or the complete new one. Tensors are laid
 * out back to back in the order given (the format forbids gaps); the header is padded with spaces so the data section
 * starts 8-byte aligned.
 */
public final class SafetensorsWriter {
    private static final int CHUNK_BYTES = 1 << 20;

    private SafetensorsWriter() {
    }

    /** One tensor to write. The payload's size must match dtype × shape. */
    public record Entry(String name, CheckpointDType dtype, int[] shape, TensorPayload data) {
        public Entry {
            shape = shape.clone();
            long expected = Math.multiplyExact(Shapes.numel(shape), (long) dtype.bytes());
            if (data.byteSize() != expected) {
                throw new IllegalArgumentException("tensor '" + name + "' is " + dtype.safetensorsName() + " "
                        + Shapes.str(shape) + " = " + expected + " bytes but its data has " + data.byteSize());
            }
        }

        public static Entry f32(String name, int[] shape, float[] values) {
            return new Entry(name, CheckpointDType.F32, shape, TensorPayload.of(values));
        }

        public static Entry bf16(String name, int[] shape, short[] bits) {
            return new Entry(name, CheckpointDType.BF16, shape, TensorPayload.ofShorts(bits));
        }

        public static Entry i32(String name, int[] shape, int[] values) {
            return new Entry(name, CheckpointDType.I32, shape, TensorPayload.of(values));
        }

        public static Entry i64(String name, int[] shape, long[] values) {
            return new Entry(name, CheckpointDType.I64, shape, TensorPayload.of(values));
        }

        /** A tensor of another checkpoint, copied as is. */
        public static Entry of(CheckpointTensor t) {
            return new Entry(t.name(), t.dtype(), t.shape(), TensorPayload.of(t.data()));
        }

        /** A tensor of another checkpoint converted to floating type {@code target} (as is when it already is). */
        public static Entry cast(CheckpointTensor t, CheckpointDType target) {
            return new Entry(t.name(), target, t.shape(), TensorPayload.cast(t, target));
        }
    }

    /** Writes {@code entries} and {@code metadata} to {@code file}, replacing it atomically. */
    public static void write(Path file, List<Entry> entries, Map<String, String> metadata) throws IOException {
        byte[] header = header(entries, metadata);
        Path abs = file.toAbsolutePath();
        Path dir = abs.getParent();
        // Not Files.createTempFile: that makes the file owner-only (0600), and the rename would keep it so.
        Path tmp = dir.resolve("." + abs.getFileName() + "." + Long.toHexString(System.nanoTime())
                + Integer.toHexString(java.util.concurrent.ThreadLocalRandom.current().nextInt()) + ".tmp");
        boolean done = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.CREATE_NEW)) {
                ByteBuffer lead = ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
                lead.putLong(header.length).flip();
                writeFully(ch, lead);
                writeFully(ch, ByteBuffer.wrap(header));
                ByteBuffer staging = ByteBuffer.allocateDirect(CHUNK_BYTES);
                MemorySegment stagingSegment = MemorySegment.ofBuffer(staging);
                for (Entry e : entries) {
                    long size = e.data().byteSize();
                    for (long from = 0; from < size; from += CHUNK_BYTES) {
                        int n = (int) Math.min(CHUNK_BYTES, size - from);
                        e.data().copyTo(from, stagingSegment.asSlice(0, n));
                        staging.clear().limit(n);
                        writeFully(ch, staging);
                    }
                }
                ch.force(true);
            }
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new IOException("cannot write " + file + " atomically: the file system cannot rename "
                        + tmp.getFileName() + " over it", e);
            }
            done = true;
            syncDirectory(dir);
        } finally {
            if (!done) {
                Files.deleteIfExists(tmp);
            }
        }
    }

    /** The JSON header, padded with spaces to make 8 + its length a multiple of 8. */
    static byte[] header(List<Entry> entries, Map<String, String> metadata) {
        StringBuilder b = new StringBuilder("{");
        if (!metadata.isEmpty()) {
            b.append("\"__metadata__\":{");
            boolean first = true;
            for (Map.Entry<String, String> m : metadata.entrySet()) {
                b.append(first ? "" : ",").append(HeaderJson.quote(m.getKey())).append(':')
                        .append(HeaderJson.quote(m.getValue()));
                first = false;
            }
            b.append('}');
        }
        Set<String> seen = new HashSet<>();
        long offset = 0;
        for (Entry e : entries) {
            if (e.name().isEmpty() || e.name().equals("__metadata__") || !seen.add(e.name())) {
                throw new IllegalArgumentException("cannot write tensor name '" + e.name()
                        + "': names must be non-empty, unique and not __metadata__");
            }
            long end = offset + e.data().byteSize();
            b.append(b.length() > 1 ? "," : "").append(HeaderJson.quote(e.name())).append(":{\"dtype\":\"")
                    .append(e.dtype().safetensorsName()).append("\",\"shape\":[");
            int[] shape = e.shape();
            for (int i = 0; i < shape.length; i++) {
                b.append(i > 0 ? "," : "").append(shape[i]);
            }
            b.append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
            offset = end;
        }
        b.append('}');
        byte[] json = b.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        byte[] out = java.util.Arrays.copyOf(json, padded);
        java.util.Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    /** Makes the rename durable. Some file systems refuse to open a folder for sync; the rename has happened then. */
    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException e) {
            // best effort: not every platform can fsync a directory
        }
    }
}
