package facm.checkpoint;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * torch.save-format files made by tools/reference/make_fake_pt.py (no PyTorch needed) against the expectations the
 * same script wrote to expected.json: the loader rule, prefixes, dtypes, values, and the refusals.
 */
class TorchCheckpointTest {
    @TempDir
    static Path dir;

    @TestFactory
    List<DynamicTest> everyGeneratedCaseLoadsAsExpected() throws IOException {
        JsonArray cases;
        try (InputStream in = getClass().getResourceAsStream("/checkpoint/expected.json")) {
            cases = JsonParser.parseString(new String(in.readAllBytes(), StandardCharsets.UTF_8)).getAsJsonArray();
        }
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonElement c : cases) {
            JsonObject o = c.getAsJsonObject();
            String name = o.get("file").getAsString() + " --which " + o.get("which").getAsString();
            tests.add(DynamicTest.dynamicTest(name, () -> check(o)));
        }
        return tests;
    }

    private static void check(JsonObject c) throws IOException {
        Path file = CheckpointTestFiles.copyResource(c.get("file").getAsString(), dir);
        StateDict.Which which = StateDict.Which.parse(c.get("which").getAsString());
        if (c.has("error")) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> StateDict.open(file, which).close());
            assertTrue(e.getMessage().contains(c.get("error").getAsString()), e.getMessage());
            assertTrue(e.getMessage().contains(file.toString()), "names the file: " + e.getMessage());
            return;
        }
        try (StateDict sd = StateDict.open(file, which)) {
            assertEquals(c.get("chosen").getAsString(), sd.chosen());
            JsonObject want = c.getAsJsonObject("tensors");
            assertEquals(new ArrayList<>(want.keySet()), new ArrayList<>(sd.tensors().keySet()));
            for (Map.Entry<String, JsonElement> e : want.entrySet()) {
                JsonObject w = e.getValue().getAsJsonObject();
                CheckpointTensor t = sd.tensor(e.getKey());
                String what = file.getFileName() + " " + t.describe();
                assertEquals(w.get("dtype").getAsString(), t.dtype().safetensorsName(), what);
                assertArrayEquals(ints(w.getAsJsonArray("shape")), t.shape(), what);
                JsonArray values = w.getAsJsonArray("values");
                if (t.dtype().isFloating()) {
                    float[] got = t.toFloats();
                    assertEquals(values.size(), got.length, what);
                    for (int i = 0; i < got.length; i++) {
                        assertEquals(values.get(i).getAsFloat(), got[i], what + " element " + i);
                    }
                } else {
                    long[] got = t.toLongs();
                    assertEquals(values.size(), got.length, what);
                    for (int i = 0; i < got.length; i++) {
                        assertEquals(values.get(i).getAsLong(), got[i], what + " element " + i);
                    }
                }
            }
        }
    }

    private static int[] ints(JsonArray a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).getAsInt();
        }
        return out;
    }

    @Test
    void theWholeObjectTreeIsReadable() throws IOException {
        try (TorchCheckpoint pt = TorchCheckpoint.open(CheckpointTestFiles.copyResource("training.pt", dir))) {
            assertEquals("0001000", pt.folder());
            Map<?, ?> top = (Map<?, ?>) pt.root();
            assertEquals(List.of("model", "emas", "opt", "args", "epoch", "step", "scheduler"),
                    new ArrayList<>(top.keySet()));
            assertEquals(1000L, top.get("step"));
            assertEquals(null, top.get("scheduler"));
            Map<?, ?> args = (Map<?, ?>) top.get("args");
            assertEquals(1e-4, args.get("lr"));
            assertEquals("LightningDiT-XL/1", args.get("model"));
            assertEquals(List.of(1L, 2L), args.get("flags"));
            assertEquals(java.math.BigInteger.ONE.shiftLeft(70), args.get("big"));
            assertEquals("ünïcode", args.get("name"));
            Map<?, ?> opt = (Map<?, ?>) top.get("opt");
            Map<?, ?> group = (Map<?, ?>) ((List<?>) opt.get("param_groups")).get(0);
            assertEquals(List.of(0.9, 0.999), group.get("betas"));
            Map<?, ?> state = (Map<?, ?>) ((Map<?, ?>) opt.get("state")).get(0L);
            assertTrue(TorchCheckpoint.isTensor(state.get("exp_avg")));
            CheckpointTensor step = pt.tensor("emas.ema_models.1.step", ((Map<?, ?>) top.get("emas"))
                    .get("ema_models.1.step"));
            assertEquals(CheckpointDType.I64, step.dtype());
            assertArrayEquals(new int[] {}, step.shape());
        }
    }

    @Test
    void truncatedOrForeignFilesAreRefusedInOneLine() throws IOException {
        Path good = CheckpointTestFiles.copyResource("ema_model.pt", dir);
        byte[] all = Files.readAllBytes(good);
        Path cut = dir.resolve("cut.pt");
        Files.write(cut, java.util.Arrays.copyOf(all, all.length - 40));
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> StateDict.open(cut, StateDict.Which.AUTO).close());
        assertTrue(e.getMessage().startsWith(cut + " is not a complete zip archive"), e.getMessage());

        Path bare = dir.resolve("legacy.pt");
        Files.write(bare, new byte[] {(byte) 0x80, 2, '}', '.'});
        e = assertThrows(CheckpointException.class, () -> StateDict.open(bare, StateDict.Which.AUTO).close());
        assertTrue(e.getMessage().contains("is a bare pickle"), e.getMessage());

        Path st = dir.resolve("x.safetensors");
        SafetensorsWriter.write(st, List.of(SafetensorsWriter.Entry.f32("module.w", new int[] {1},
                new float[] {1})), Map.of());
        e = assertThrows(CheckpointException.class, () -> StateDict.open(st, StateDict.Which.EMA).close());
        assertTrue(e.getMessage().contains("--which ema does not apply"), e.getMessage());
        try (StateDict sd = StateDict.open(st, StateDict.Which.AUTO)) {
            assertEquals(List.of("w"), new ArrayList<>(sd.tensors().keySet()));
            assertEquals("1 tensor, 4 B fp32", sd.summary());
        }
    }

    @Test
    void aStorageShorterThanItsTensorIsCalledTruncated() throws IOException {
        // Rewrite the zip with storage '0' cut short by rebuilding nothing: the central directory size is
        // authoritative, so shrink it there (offset 24 of the central entry = uncompressed, 20 = compressed size).
        Path f = CheckpointTestFiles.copyResource("ema_model.pt", dir);
        byte[] all = Files.readAllBytes(f);
        String name = "archive/data/0";
        int cd = indexOf(all, new byte[] {'P', 'K', 1, 2}, name);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(all).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.putInt(cd + 20, b.getInt(cd + 20) - 4).putInt(cd + 24, b.getInt(cd + 24) - 4);
        Files.write(f, all);
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> StateDict.open(f, StateDict.Which.AUTO).close());
        assertTrue(e.getMessage().equals(f + " is truncated: storage 'archive/data/0' should hold 32 bytes "
                + "(8 fp32) but has 28"), e.getMessage());
    }

    /** Offset of the central-directory record (signature {@code sig}) whose file name is {@code name}. */
    private static int indexOf(byte[] all, byte[] sig, String name) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        for (int i = 0; i + 46 + n.length <= all.length; i++) {
            if (all[i] == sig[0] && all[i + 1] == sig[1] && all[i + 2] == sig[2] && all[i + 3] == sig[3]
                    && java.util.Arrays.equals(all, i + 46, i + 46 + n.length, n, 0, n.length)
                    && (all[i + 28] & 0xFF) == n.length) {
                return i;
            }
        }
        throw new AssertionError("no central entry " + name);
    }
}
