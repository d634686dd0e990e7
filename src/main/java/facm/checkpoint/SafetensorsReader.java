package facm.checkpoint;

import facm.tensor.Shapes;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads a safetensors file (8-byte little-endian header length, JSON header, data section) through one memory
 * mapping, so files over 2 GiB work and {@link #segment} costs nothing. Everything is validated when the file is
 * opened: header length, JSON syntax, dtypes, shapes, sizes, offsets inside the file and no two tensors overlapping.
 * Tensor views are valid until {@link #close()}; using one afterwards throws IllegalStateException.
 */
public final class SafetensorsReader implements AutoCloseable {
    /** Larger headers are corrupt (the reference implementation refuses over 100 MB too). */
    static final long MAX_HEADER_BYTES = 100L << 20;

    private final Path file;
    private final Arena arena;
    private final Map<String, CheckpointTensor> tensors;
    private final Map<String, String> metadata;
    private final long dataStart;

    private SafetensorsReader(Path file, Arena arena, Map<String, CheckpointTensor> tensors,
                              Map<String, String> metadata, long dataStart) {
        this.file = file;
        this.arena = arena;
        this.tensors = Collections.unmodifiableMap(tensors);
        this.metadata = Collections.unmodifiableMap(metadata);
        this.dataStart = dataStart;
    }

    /** Maps and validates {@code file}; a {@link CheckpointException} names what is wrong and where. */
    public static SafetensorsReader open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment all;
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                long size = ch.size();
                if (size < 8) {
                    throw new CheckpointException(file + " is truncated: it has " + size
                            + " bytes, a safetensors file starts with an 8-byte header length");
                }
                all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            }
            SafetensorsReader r = parse(file, arena, all);
            arena = null; // owned by the reader now
            return r;
        } finally {
            if (arena != null) {
                arena.close();
            }
        }
    }

    private static SafetensorsReader parse(Path file, Arena arena, MemorySegment all) {
        long size = all.byteSize();
        long headerLen = all.get(CheckpointTensor.I64_LE, 0);
        if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) {
            throw corrupt(file, 0, "header length " + Long.toUnsignedString(headerLen)
                    + " is not plausible (file has " + size + " bytes)");
        }
        if (8 + headerLen > size) {
            throw new CheckpointException(file + " is truncated: the header ends at byte " + (8 + headerLen)
                    + " but the file has " + size + " bytes");
        }
        byte[] header = new byte[(int) headerLen];
        MemorySegment.copy(all, ValueLayout.JAVA_BYTE, 8, header, 0, header.length);
        HeaderJson.Parsed parsed;
        try {
            parsed = HeaderJson.parse(header);
        } catch (HeaderJson.SyntaxError e) {
            throw corrupt(file, 8 + e.position, e.getMessage());
        }
        if (!(parsed.value() instanceof Map<?, ?> top)) {
            throw corrupt(file, 8, "the header is not a JSON object");
        }
        long dataStart = 8 + headerLen;
        Map<String, String> metadata = new LinkedHashMap<>();
        List<Placed> placed = new ArrayList<>();
        for (Map.Entry<?, ?> e : top.entrySet()) {
            String key = (String) e.getKey();
            long at = 8 + parsed.topLevelKeyPositions().get(key);
            if (key.equals("__metadata__")) {
                readMetadata(file, at, e.getValue(), metadata);
            } else {
                placed.add(readEntry(file, at, key, e.getValue(), dataStart, size));
            }
        }
        checkOverlaps(file, placed);
        Map<String, CheckpointTensor> tensors = new LinkedHashMap<>();
        for (Placed p : placed) {
            MemorySegment bytes = all.asSlice(dataStart + p.begin, p.end - p.begin).asReadOnly();
            tensors.put(p.name, new CheckpointTensor(p.name, p.dtype, p.shape, bytes));
        }
        return new SafetensorsReader(file, arena, tensors, metadata, dataStart);
    }

    private record Placed(String name, CheckpointDType dtype, int[] shape, long begin, long end, long headerAt) {
    }

    private static void readMetadata(Path file, long at, Object value, Map<String, String> out) {
        if (!(value instanceof Map<?, ?> m)) {
            throw corrupt(file, at, "__metadata__ must be an object of strings");
        }
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getValue() instanceof String s)) {
                throw corrupt(file, at, "__metadata__ entry \"" + e.getKey() + "\" is not a string");
            }
            out.put((String) e.getKey(), s);
        }
    }

    private static Placed readEntry(Path file, long at, String name, Object value, long dataStart, long fileSize) {
        String what = "tensor '" + name + "'";
        if (!(value instanceof Map<?, ?> m)) {
            throw corrupt(file, at, what + " is not an object");
        }
        for (Object k : m.keySet()) {
            if (!k.equals("dtype") && !k.equals("shape") && !k.equals("data_offsets")) {
                throw corrupt(file, at, what + " has an unknown field \"" + k + "\"");
            }
        }
        if (!(m.get("dtype") instanceof String dtypeName)) {
            throw corrupt(file, at, what + " has no string \"dtype\"");
        }
        CheckpointDType dtype = CheckpointDType.fromSafetensorsName(dtypeName);
        if (dtype == null) {
            throw corrupt(file, at, what + " has unsupported dtype '" + dtypeName + "'");
        }
        long[] dims = longs(file, at, what, "shape", m.get("shape"));
        int[] shape = new int[dims.length];
        for (int i = 0; i < dims.length; i++) {
            if (dims[i] > Integer.MAX_VALUE) {
                throw corrupt(file, at, what + " has dimension " + dims[i] + " beyond 2^31-1");
            }
            shape[i] = (int) dims[i];
        }
        long[] offsets = longs(file, at, what, "data_offsets", m.get("data_offsets"));
        if (offsets.length != 2 || offsets[0] > offsets[1]) {
            throw corrupt(file, at, what + " needs \"data_offsets\": [begin, end] with begin <= end");
        }
        long expected;
        try {
            expected = Math.multiplyExact(Shapes.numel(shape), (long) dtype.bytes());
        } catch (ArithmeticException e) {
            throw corrupt(file, at, what + " has a shape whose byte size overflows 64 bits");
        }
        long held = offsets[1] - offsets[0];
        if (held != expected) {
            throw corrupt(file, at, what + " is " + dtypeName + " " + Shapes.str(shape) + " = " + expected
                    + " bytes but data_offsets [" + offsets[0] + "," + offsets[1] + "] hold " + held);
        }
        if (offsets[1] > fileSize - dataStart) {
            throw new CheckpointException(file + " is truncated: tensor '" + name + "' ends at byte "
                    + (dataStart + offsets[1]) + " but the file has " + fileSize + " bytes");
        }
        return new Placed(name, dtype, shape, offsets[0], offsets[1], at);
    }

    private static long[] longs(Path file, long at, String what, String field, Object v) {
        if (!(v instanceof List<?> l)) {
            throw corrupt(file, at, what + " has no array \"" + field + "\"");
        }
        long[] out = new long[l.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(l.get(i) instanceof Long x) || x < 0) {
                throw corrupt(file, at, what + ": \"" + field + "\" must hold non-negative integers, found "
                        + l.get(i));
            }
            out[i] = x;
        }
        return out;
    }

    /** Sorted by start, every non-empty tensor must begin at or after the end of the one before. */
    private static void checkOverlaps(Path file, List<Placed> placed) {
        List<Placed> sorted = new ArrayList<>(placed.stream().filter(p -> p.end > p.begin).toList());
        sorted.sort(Comparator.comparingLong(Placed::begin));
        for (int i = 1; i < sorted.size(); i++) {
            Placed a = sorted.get(i - 1);
            Placed b = sorted.get(i);
            if (b.begin < a.end) {
                throw corrupt(file, b.headerAt, "tensors '" + a.name + "' [" + a.begin + "," + a.end + ") and '"
                        + b.name + "' [" + b.begin + "," + b.end + ") overlap");
            }
        }
    }

    private static CheckpointException corrupt(Path file, long at, String what) {
        return new CheckpointException(file + ": corrupt safetensors header at byte " + at + ": " + what);
    }

    // ---------------------------------------------------------------- access

    public Path file() {
        return file;
    }

    /** Tensor names in header order. */
    public List<String> names() {
        return List.copyOf(tensors.keySet());
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /** The tensor called {@code name}; an error naming the file when there is none. */
    public CheckpointTensor tensor(String name) {
        CheckpointTensor t = tensors.get(name);
        if (t == null) {
            throw new CheckpointException("no tensor '" + name + "' in " + file + " (" + tensors.size()
                    + " tensors)");
        }
        return t;
    }

    /** All tensors, in header order (views into the mapping). */
    public Map<String, CheckpointTensor> tensors() {
        return tensors;
    }

    /** Name → shape, e.g. for {@link StateDictCheck#verify}. */
    public Map<String, int[]> shapes() {
        Map<String, int[]> m = new LinkedHashMap<>();
        tensors.forEach((k, t) -> m.put(k, t.shape()));
        return m;
    }

    /** The "__metadata__" strings (empty when the file has none). */
    public Map<String, String> metadata() {
        return metadata;
    }

    public CheckpointDType dtype(String name) {
        return tensor(name).dtype();
    }

    public int[] shape(String name) {
        return tensor(name).shape();
    }

    /** Zero-copy read-only view of the tensor's little-endian bytes. */
    public MemorySegment segment(String name) {
        return tensor(name).data();
    }

    public float[] readFloats(String name) {
        return withFile(tensor(name)::toFloats);
    }

    public short[] readBf16Bits(String name) {
        return withFile(tensor(name)::toBf16Bits);
    }

    public int[] readInts(String name) {
        return withFile(tensor(name)::toInts);
    }

    public long[] readLongs(String name) {
        return withFile(tensor(name)::toLongs);
    }

    /** Byte offset in the file where the data section (offset 0 of data_offsets) begins. */
    public long dataStart() {
        return dataStart;
    }

    private <T> T withFile(java.util.function.Supplier<T> read) {
        try {
            return read.get();
        } catch (CheckpointException e) {
            throw new CheckpointException(file + ": " + e.getMessage(), e);
        }
    }

    /** Unmaps the file; tensor views handed out before become unusable. Safe to call twice. */
    @Override
    public synchronized void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
