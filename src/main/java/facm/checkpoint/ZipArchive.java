package facm.checkpoint;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Read-only view of a zip file through one memory mapping (ZIP64 included), as torch.save writes it: entries are
 * normally stored uncompressed, so {@link #entry} returns a zero-copy slice of the mapping; deflated entries (a zip
 * re-packed by another tool) are inflated onto the heap. Entry bounds are checked against the file size.
 */
final class ZipArchive implements AutoCloseable {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int EOCD = 0x06054b50;
    private static final int EOCD64 = 0x06064b50;
    private static final int EOCD64_LOCATOR = 0x07064b50;
    private static final int CENTRAL = 0x02014b50;
    private static final int LOCAL = 0x04034b50;

    private record Entry(String name, int method, int flags, long compressedSize, long size, long localHeader) {
    }

    private final Path file;
    private final Arena arena;
    private final MemorySegment all;
    private final Map<String, Entry> entries = new LinkedHashMap<>();

    private ZipArchive(Path file, Arena arena, MemorySegment all) {
        this.file = file;
        this.arena = arena;
        this.all = all;
    }

    static ZipArchive open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment all;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                all = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
            }
            ZipArchive z = new ZipArchive(file, arena, all);
            z.readCentralDirectory();
            arena = null;
            return z;
        } finally {
            if (arena != null) {
                arena.close();
            }
        }
    }

    /** True when the file starts like a zip (local header or empty-archive record). */
    static boolean looksLikeZip(MemorySegment start) {
        return start.byteSize() >= 4 && (start.get(U32, 0) == LOCAL || start.get(U32, 0) == EOCD);
    }

    private void readCentralDirectory() {
        long size = all.byteSize();
        long eocd = -1;
        for (long p = size - 22; p >= Math.max(0, size - 22 - 65535); p--) {
            if (all.get(U32, p) == EOCD) {
                eocd = p;
                break;
            }
        }
        if (eocd < 0) {
            throw new CheckpointException(file + " is not a complete zip archive (no end-of-central-directory "
                    + "record; the file may be truncated)");
        }
        long count = u16(eocd + 10);
        long cdSize = u32(eocd + 12);
        long cdOffset = u32(eocd + 16);
        if ((count == 0xFFFF || cdSize == 0xFFFFFFFFL || cdOffset == 0xFFFFFFFFL) && eocd >= 20
                && all.get(U32, eocd - 20) == EOCD64_LOCATOR) {
            long rec = all.get(U64, eocd - 20 + 8);
            require(rec >= 0 && rec + 56 <= size && all.get(U32, rec) == EOCD64, eocd - 20,
                    "ZIP64 locator points to no ZIP64 end record");
            count = all.get(U64, rec + 32);
            cdSize = all.get(U64, rec + 40);
            cdOffset = all.get(U64, rec + 48);
        }
        require(cdOffset >= 0 && cdSize >= 0 && cdOffset + cdSize <= size, eocd,
                "central directory [" + cdOffset + ", +" + cdSize + ") lies outside the file");
        long p = cdOffset;
        for (long i = 0; i < count; i++) {
            require(p + 46 <= size && all.get(U32, p) == CENTRAL, p, "bad central directory entry " + i);
            int flags = u16(p + 8);
            int method = u16(p + 10);
            long csize = u32(p + 20);
            long usize = u32(p + 24);
            int nameLen = u16(p + 28);
            int extraLen = u16(p + 30);
            int commentLen = u16(p + 32);
            long local = u32(p + 42);
            require(p + 46 + nameLen + extraLen + commentLen <= size, p, "central directory entry " + i
                    + " runs past the end of the file");
            String name = new String(bytes(p + 46, nameLen), StandardCharsets.UTF_8);
            // ZIP64 extra field: the 64-bit values for exactly those fields that hold 0xFFFFFFFF, in this order.
            long e = p + 46 + nameLen;
            long eEnd = e + extraLen;
            while (e + 4 <= eEnd) {
                int id = u16(e);
                int len = u16(e + 2);
                if (id == 0x0001) {
                    long q = e + 4;
                    if (usize == 0xFFFFFFFFL) {
                        usize = all.get(U64, q);
                        q += 8;
                    }
                    if (csize == 0xFFFFFFFFL) {
                        csize = all.get(U64, q);
                        q += 8;
                    }
                    if (local == 0xFFFFFFFFL) {
                        local = all.get(U64, q);
                    }
                }
                e += 4 + len;
            }
            entries.put(name, new Entry(name, method, flags, csize, usize, local));
            p += 46 + nameLen + extraLen + commentLen;
        }
    }

    /** Entry names in central-directory order. */
    List<String> names() {
        return List.copyOf(entries.keySet());
    }

    boolean contains(String name) {
        return entries.containsKey(name);
    }

    /** The uncompressed bytes of entry {@code name}, read-only; valid until {@link #close()}. */
    MemorySegment entry(String name) {
        Entry en = entries.get(name);
        if (en == null) {
            throw new CheckpointException(file + " has no zip entry '" + name + "'");
        }
        long size = all.byteSize();
        require(en.localHeader >= 0 && en.localHeader + 30 <= size && all.get(U32, en.localHeader) == LOCAL,
                en.localHeader, "no local header for entry '" + name + "'");
        if ((en.flags & 1) != 0) {
            throw new CheckpointException(file + ": zip entry '" + name + "' is encrypted");
        }
        // The local header's extra field may differ from the central one (torch pads it to align the data).
        long data = en.localHeader + 30 + u16(en.localHeader + 26) + u16(en.localHeader + 28);
        long end = data + en.compressedSize;
        if (en.compressedSize < 0 || end > size) {
            throw new CheckpointException(file + " is truncated: zip entry '" + name + "' ends at byte " + end
                    + " but the file has " + size + " bytes");
        }
        MemorySegment raw = all.asSlice(data, en.compressedSize).asReadOnly();
        return switch (en.method) {
            case 0 -> raw;
            case 8 -> inflate(en, raw);
            default -> throw new CheckpointException(file + ": zip entry '" + name + "' uses compression method "
                    + en.method + " (only stored and deflate are read)");
        };
    }

    private MemorySegment inflate(Entry en, MemorySegment raw) {
        if (en.size > Integer.MAX_VALUE - 8 || en.compressedSize > Integer.MAX_VALUE - 8) {
            throw new CheckpointException(file + ": deflated zip entry '" + en.name + "' is over 2 GiB; re-save "
                    + "the checkpoint uncompressed (torch.save does)");
        }
        byte[] out = new byte[(int) en.size];
        Inflater inf = new Inflater(true);
        try {
            inf.setInput(raw.toArray(ValueLayout.JAVA_BYTE));
            int n = 0;
            while (n < out.length && !inf.finished()) {
                int k = inf.inflate(out, n, out.length - n);
                if (k == 0 && (inf.needsInput() || inf.needsDictionary())) {
                    break;
                }
                n += k;
            }
            if (n != out.length) {
                throw new CheckpointException(file + ": zip entry '" + en.name + "' inflates to " + n
                        + " bytes, the directory says " + en.size);
            }
        } catch (DataFormatException e) {
            throw new CheckpointException(file + ": zip entry '" + en.name + "' is corrupt: " + e.getMessage(), e);
        } finally {
            inf.end();
        }
        return MemorySegment.ofArray(out).asReadOnly();
    }

    private void require(boolean ok, long at, String what) {
        if (!ok) {
            throw new CheckpointException(file + ": corrupt zip archive at byte " + at + ": " + what);
        }
    }

    private int u16(long p) {
        return all.get(U16, p) & 0xFFFF;
    }

    private long u32(long p) {
        return all.get(U32, p) & 0xFFFFFFFFL;
    }

    private byte[] bytes(long p, int n) {
        return all.asSlice(p, n).toArray(ValueLayout.JAVA_BYTE);
    }

    Path file() {
        return file;
    }

    @Override
    public synchronized void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
