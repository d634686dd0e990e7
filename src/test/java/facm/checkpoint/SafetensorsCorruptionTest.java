package facm.checkpoint;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every way a safetensors file can be broken ends in one line naming the file and where. */
class SafetensorsCorruptionTest {
    @TempDir
    Path dir;

    private Path file(String header, int dataBytes) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path f = dir.resolve("bad.safetensors");
        Files.write(f, b.array());
        return f;
    }

    private String error(Path f) {
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsReader.open(f).close());
        assertTrue(!e.getMessage().contains("\n"), "one line: " + e.getMessage());
        return e.getMessage();
    }

    @Test
    void truncatedData() throws IOException {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"k\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}";
        Path f = file(h, 20);
        long end = 8 + h.length() + 24;
        assertEquals(f + " is truncated: tensor 'k' ends at byte " + end + " but the file has " + (end - 4)
                + " bytes", error(f));
    }

    @Test
    void truncatedAFileThatWasFine() throws IOException {
        Path good = dir.resolve("good.safetensors");
        SafetensorsWriter.write(good, List.of(SafetensorsWriter.Entry.f32("w", new int[] {100}, new float[100])),
                Map.of());
        byte[] all = Files.readAllBytes(good);
        Files.write(good, java.util.Arrays.copyOf(all, all.length - 1));
        assertTrue(error(good).matches(".* is truncated: tensor 'w' ends at byte \\d+ but the file has \\d+ bytes"));
        Files.write(good, java.util.Arrays.copyOf(all, 20));
        assertTrue(error(good).matches(".* is truncated: the header ends at byte \\d+ but the file has 20 bytes"));
        Files.write(good, new byte[5]);
        assertEquals(good + " is truncated: it has 5 bytes, a safetensors file starts with an 8-byte header "
                + "length", error(good));
    }

    @Test
    void implausibleHeaderLength() throws IOException {
        Path f = dir.resolve("huge.safetensors");
        Files.write(f, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(-5).array());
        assertEquals(f + ": corrupt safetensors header at byte 0: header length 18446744073709551611 is not "
                + "plausible (file has 16 bytes)", error(f));
    }

    @Test
    void malformedJsonNamesTheByte() throws IOException {
        // the header starts at byte 8; the '{' that stands where ':' belongs is at header offset 5
        assertEquals(file("{\"a\" {}}", 0) + ": corrupt safetensors header at byte 13: unexpected '{', "
                + "expected ':'", error(file("{\"a\" {}}", 0)));
        assertTrue(error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4))
                .endsWith("at byte 63: unexpected 'x' after the end of the JSON object"));
        assertTrue(error(file("[1,2]", 0)).endsWith("at byte 8: the header is not a JSON object"));
        assertTrue(error(file("{\"a\":1,\"a\":2}", 0)).endsWith("at byte 15: duplicate key \"a\""));
        assertTrue(error(file("{\"a\":\"\\q\"}", 0)).contains("invalid escape \\q"));
        assertTrue(error(file("{\"a\":01}", 0)).contains("leading zero"));
        assertTrue(error(file("{\"a\":[1,2", 0)).contains("unexpected end of header"));
    }

    @Test
    void overlappingTensors() throws IOException {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
        String m = error(file(h, 12));
        assertTrue(m.endsWith("tensors 'a' [0,8) and 'b' [4,12) overlap"), m);
        assertTrue(m.contains(": corrupt safetensors header at byte 62: "), m);
    }

    @Test
    void inconsistentEntries() throws IOException {
        assertTrue(error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8))
                .endsWith("tensor 'a' is F32 [3] = 12 bytes but data_offsets [0,8] hold 8"));
        assertTrue(error(file("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1))
                .endsWith("tensor 'a' has unsupported dtype 'F8_E4M3'"));
        assertTrue(error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0))
                .endsWith("tensor 'a': \"shape\" must hold non-negative integers, found -1"));
        assertTrue(error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4))
                .endsWith("needs \"data_offsets\": [begin, end] with begin <= end"));
        assertTrue(error(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"offsets\":[0,4]}}", 4))
                .endsWith("tensor 'a' has an unknown field \"offsets\""));
        assertTrue(error(file("{\"__metadata__\":{\"n\":3}}", 0)).endsWith("__metadata__ entry \"n\" is not a string"));
    }

    @Test
    void emptyFileWithOnlyMetadataIsFine() throws IOException {
        try (SafetensorsReader r = SafetensorsReader.open(file("{\"__metadata__\":{\"k\":\"v\"}}  ", 0))) {
            assertEquals(List.of(), r.names());
            assertEquals(Map.of("k", "v"), r.metadata());
        }
    }
}
