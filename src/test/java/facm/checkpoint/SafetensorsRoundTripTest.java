package facm.checkpoint;

import facm.tensor.Bf16;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SafetensorsRoundTripTest {
    @TempDir
    Path dir;

    @Test
    void everyDtypeOddShapesScalarsAndEmptyTensorsSurviveARoundTrip() throws IOException {
        float[] f32 = {1.5f, -2.25f, 3e-7f, Float.MAX_VALUE, -0f, Float.NaN, Float.POSITIVE_INFINITY};
        short[] bf16 = new short[7];
        short[] f16 = new short[7];
        for (int i = 0; i < 7; i++) {
            bf16[i] = Bf16.fromFloat(i * 0.375f - 1);
            f16[i] = Float.floatToFloat16(i * 0.125f - 0.5f);
        }
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        entries.add(SafetensorsWriter.Entry.f32("odd/f32", new int[] {7, 1}, f32));
        entries.add(SafetensorsWriter.Entry.bf16("bf16 ünïcode", new int[] {1, 7}, bf16));
        entries.add(new SafetensorsWriter.Entry("f16", CheckpointDType.F16, new int[] {7},
                TensorPayload.ofShorts(f16)));
        entries.add(new SafetensorsWriter.Entry("f64", CheckpointDType.F64, new int[] {3},
                TensorPayload.of(bytesLE(8, b -> b.putDouble(0.1).putDouble(-1e300).putDouble(2.5)))));
        entries.add(SafetensorsWriter.Entry.i64("i64", new int[] {2}, new long[] {Long.MIN_VALUE, 1L << 40}));
        entries.add(SafetensorsWriter.Entry.i32("i32 scalar", new int[] {}, new int[] {-42}));
        entries.add(new SafetensorsWriter.Entry("i16", CheckpointDType.I16, new int[] {2},
                TensorPayload.of(bytesLE(4, b -> b.putShort((short) -3).putShort((short) 30000)))));
        entries.add(new SafetensorsWriter.Entry("i8", CheckpointDType.I8, new int[] {3},
                TensorPayload.of(new byte[] {-128, 0, 127})));
        entries.add(new SafetensorsWriter.Entry("u8", CheckpointDType.U8, new int[] {3},
                TensorPayload.of(new byte[] {(byte) 255, 0, 7})));
        entries.add(new SafetensorsWriter.Entry("bool", CheckpointDType.BOOL, new int[] {1, 1, 3},
                TensorPayload.of(new byte[] {1, 0, 1})));
        entries.add(SafetensorsWriter.Entry.f32("empty", new int[] {0, 5}, new float[0]));
        entries.add(SafetensorsWriter.Entry.f32("scalar", new int[] {}, new float[] {6.5f}));
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        meta.put("config", "{\"depth\": 28, \"quote\": \"\\\"\"}\n");
        Path file = dir.resolve("all.safetensors");
        SafetensorsWriter.write(file, entries, meta);

        try (SafetensorsReader r = SafetensorsReader.open(file)) {
            assertEquals(entries.stream().map(SafetensorsWriter.Entry::name).toList(), r.names());
            assertEquals(meta, r.metadata());
            assertEquals(0, r.dataStart() % 8, "data section must start 8-byte aligned");
            assertArrayEquals(new int[] {7, 1}, r.shape("odd/f32"));
            assertArrayEquals(f32, r.readFloats("odd/f32"));
            assertArrayEquals(bf16, r.readBf16Bits("bf16 ünïcode"));
            assertEquals(Bf16.toFloat(bf16[3]), r.readFloats("bf16 ünïcode")[3]);
            assertEquals(Float.float16ToFloat(f16[5]), r.readFloats("f16")[5]);
            assertArrayEquals(new float[] {0.1f, Float.NEGATIVE_INFINITY, 2.5f}, r.readFloats("f64"));
            assertArrayEquals(new long[] {Long.MIN_VALUE, 1L << 40}, r.readLongs("i64"));
            assertArrayEquals(new int[] {}, r.shape("i32 scalar"));
            assertArrayEquals(new int[] {-42}, r.readInts("i32 scalar"));
            assertArrayEquals(new int[] {-3, 30000}, r.readInts("i16"));
            assertArrayEquals(new int[] {-128, 0, 127}, r.readInts("i8"));
            assertArrayEquals(new long[] {255, 0, 7}, r.readLongs("u8"));
            assertArrayEquals(new int[] {1, 0, 1}, r.readInts("bool"));
            assertEquals(CheckpointDType.BOOL, r.dtype("bool"));
            assertEquals(0, r.readFloats("empty").length);
            assertEquals(0, r.segment("empty").byteSize());
            assertArrayEquals(new float[] {6.5f}, r.readFloats("scalar"));
            assertEquals(28, r.segment("odd/f32").byteSize());
            CheckpointException e = assertThrows(CheckpointException.class, () -> r.readInts("odd/f32"));
            assertTrue(e.getMessage().contains("'odd/f32' F32 [7,1] is floating point"), e.getMessage());
            e = assertThrows(CheckpointException.class, () -> r.readFloats("i64"));
            assertTrue(e.getMessage().startsWith(file + ": tensor 'i64'"), e.getMessage());
            e = assertThrows(CheckpointException.class, () -> r.tensor("nope"));
            assertEquals("no tensor 'nope' in " + file + " (12 tensors)", e.getMessage());
        }
    }

    @Test
    void headerIsTheDocumentedJsonPaddedWithSpaces() throws IOException {
        Path file = dir.resolve("small.safetensors");
        SafetensorsWriter.write(file, List.of(SafetensorsWriter.Entry.f32("a", new int[] {2}, new float[] {1, 2}),
                SafetensorsWriter.Entry.i64("b", new int[] {}, new long[] {3})), Map.of());
        byte[] all = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(all, 8, (int) n, StandardCharsets.UTF_8);
        assertEquals("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}", header.stripTrailing());
        assertEquals(0, (8 + n) % 8);
        assertEquals(8 + n + 16, all.length);
        assertEquals(1f, ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN).getFloat((int) (8 + n)));
    }

    @Test
    void largeTensorsAreWrittenInChunksAndCastOnTheWay() throws IOException {
        int n = (1 << 20) / 4 * 3 + 5; // three 1 MiB chunks and a tail
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) Math.sin(i * 0.001) * 3;
        }
        Path src = dir.resolve("big.safetensors");
        SafetensorsWriter.write(src, List.of(SafetensorsWriter.Entry.f32("w", new int[] {n}, v)), Map.of());
        Path dst = dir.resolve("big-bf16.safetensors");
        try (SafetensorsReader r = SafetensorsReader.open(src)) {
            assertArrayEquals(v, r.readFloats("w"));
            SafetensorsWriter.write(dst, List.of(SafetensorsWriter.Entry.cast(r.tensor("w"), CheckpointDType.BF16),
                    new SafetensorsWriter.Entry("h", CheckpointDType.F16, new int[] {n},
                            TensorPayload.cast(r.tensor("w"), CheckpointDType.F16))), Map.of());
        }
        try (SafetensorsReader r = SafetensorsReader.open(dst)) {
            short[] bits = r.readBf16Bits("w");
            float[] half = r.readFloats("h");
            for (int i = 0; i < n; i += 997) {
                assertEquals(Bf16.fromFloat(v[i]), bits[i], "bf16 element " + i);
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(v[i])), half[i], "f16 element " + i);
            }
            assertEquals(Bf16.fromFloat(v[n - 1]), bits[n - 1]);
        }
    }

    @Test
    void writingReplacesAtomicallyAndLeavesNoTemporaryFiles() throws IOException {
        Path file = dir.resolve("w.safetensors");
        SafetensorsWriter.write(file, List.of(SafetensorsWriter.Entry.f32("a", new int[] {1}, new float[] {1})),
                Map.of());
        try (SafetensorsReader old = SafetensorsReader.open(file)) {
            SafetensorsWriter.write(file, List.of(SafetensorsWriter.Entry.f32("b", new int[] {2},
                    new float[] {2, 3})), Map.of("v", "2"));
            assertArrayEquals(new float[] {1}, old.readFloats("a"), "a reader keeps the file it mapped");
        }
        try (SafetensorsReader r = SafetensorsReader.open(file); Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of("b"), r.names());
            assertEquals(List.of(file), files.toList());
        }
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.write(file, List.of(
                SafetensorsWriter.Entry.f32("x", new int[] {1}, new float[] {1}),
                SafetensorsWriter.Entry.f32("x", new int[] {1}, new float[] {1})), Map.of()));
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.Entry.f32("x", new int[] {2, 2},
                new float[3]));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(1, files.count(), "a refused write leaves nothing behind");
        }
    }

    private static byte[] bytesLE(int size, java.util.function.Consumer<ByteBuffer> fill) {
        ByteBuffer b = ByteBuffer.allocate(size * 8).order(ByteOrder.LITTLE_ENDIAN);
        fill.accept(b);
        return java.util.Arrays.copyOf(b.array(), b.position());
    }
}
