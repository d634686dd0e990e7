package facm.checkpoint;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Hand-assembled pickles: the opcodes torch.save emits decode to plain data; everything dangerous is refused. */
class RestrictedUnpicklerTest {

    private static Object load(Object... parts) {
        return RestrictedUnpickler.load(bytes(parts), "test.pkl", pid -> {
            throw new IllegalArgumentException("no persistent ids here");
        });
    }

    /** Strings become their UTF-8 bytes, Characters and Integers single bytes. */
    private static byte[] bytes(Object... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Object p : parts) {
            if (p instanceof String s) {
                out.writeBytes(s.getBytes(StandardCharsets.UTF_8));
            } else if (p instanceof Character c) {
                out.write(c);
            } else {
                out.write((Integer) p);
            }
        }
        return out.toByteArray();
    }

    @Test
    void protocolTwoScalarsContainersAndMemo() {
        // {'a': [1, -2, 70000, 2**64, -1, 0.5, True, None], 'b': ('x', 'x')} with BINPUT/BINGET
        Object v = load(0x80, 2, '}', 'q', 0, '(',
                'X', 1, 0, 0, 0, "a", ']', 'q', 1, '(', 'K', 1, 'J', 0xFE, 0xFF, 0xFF, 0xFF, 'M', 0x70, 0x11,
                0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x8a, 1, 0xFF,
                'G', 0x3F, 0xE0, 0, 0, 0, 0, 0, 0, 0x88, 'N', 'e',
                'X', 1, 0, 0, 0, "b", 'X', 1, 0, 0, 0, "x", 'q', 2, 'h', 2, 0x86, 'u', '.');
        Map<?, ?> m = (Map<?, ?>) v;
        assertEquals(List.of("a", "b"), List.copyOf(m.keySet()));
        List<?> a = (List<?>) m.get("a");
        assertEquals(1L, a.get(0));
        assertEquals(-2L, a.get(1));
        assertEquals(0x1170L, a.get(2));
        assertEquals(BigInteger.ONE.shiftLeft(64), a.get(3));
        assertEquals(-1L, a.get(4));
        assertEquals(0.5, a.get(5));
        assertEquals(Boolean.TRUE, a.get(6));
        assertEquals(null, a.get(7));
        assertEquals(List.of("x", "x"), m.get("b"));
    }

    @Test
    void protocolFourFramesMemoizeAndShortStrings() {
        // FRAME n, EMPTY_DICT, MEMOIZE, SHORT_BINUNICODE 'k', MEMOIZE, EMPTY_TUPLE, SETITEM, STOP
        Object v = load(0x80, 4, 0x95, 6, 0, 0, 0, 0, 0, 0, 0, '}', 0x94, 0x8c, 1, "k", 0x94, ')', 's', '.');
        assertEquals(Map.of("k", List.of()), v);
    }

    @Test
    void refusesGlobalsOutsideTheStateDictAllowList() {
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> load(0x80, 2, 'c', "os\nsystem\n", 'X', 2, 0, 0, 0, "ls", 0x85, 'R', '.'));
        assertEquals("refusing to unpickle 'os.system' at byte 2 of test.pkl: only state-dict classes are allowed",
                e.getMessage());
        e = assertThrows(CheckpointException.class, () -> load(0x80, 4, 0x8c, 8, "builtins", 0x8c, 4, "eval",
                0x93, '.'));
        assertEquals("refusing to unpickle 'builtins.eval' at byte 18 of test.pkl: only state-dict classes are "
                + "allowed", e.getMessage());
        e = assertThrows(CheckpointException.class, () -> load(0x80, 2, 'c', "torch\nload\n", '.'));
        assertTrue(e.getMessage().startsWith("refusing to unpickle 'torch.load' at byte 2"), e.getMessage());
        e = assertThrows(CheckpointException.class, () -> load('(', 'i', "os\nsystem\n", '.'));
        assertTrue(e.getMessage().contains("INST at byte 1 is not an opcode torch.save emits"), e.getMessage());
    }

    @Test
    void malformedPicklesFailWithTheirPosition() {
        CheckpointException e = assertThrows(CheckpointException.class, () -> load(0x80, 2, '}'));
        assertEquals("corrupt pickle test.pkl at byte 3: ends without STOP", e.getMessage());
        e = assertThrows(CheckpointException.class, () -> load(0x80, 2, 's', '.'));
        assertEquals("corrupt pickle test.pkl at byte 2: stack underflow", e.getMessage());
        e = assertThrows(CheckpointException.class, () -> load(0x80, 2, 'h', 7, '.'));
        assertEquals("corrupt pickle test.pkl at byte 2: memo key 7 was never stored", e.getMessage());
        e = assertThrows(CheckpointException.class, () -> load(0x80, 2, 'X', 100, 0, 0, 0, "ab", '.'));
        assertTrue(e.getMessage().contains("length 100 runs past the end"), e.getMessage());
        e = assertThrows(CheckpointException.class, () -> load(0x80, 2, 'c', "collections\nOrderedDict\n",
                'K', 1, 'R', '.'));
        assertTrue(e.getMessage().contains("arguments are Long, not a tuple"), e.getMessage());
        // l = []; l.append(l); {l: 1}: hashing the self-containing list would never end
        e = assertThrows(CheckpointException.class, () -> load(0x80, 2, ']', 'q', 0, 'h', 0, 'a', '}', 'h', 0,
                'K', 1, 's', '.'));
        assertTrue(e.getMessage().contains("self-referential structure"), e.getMessage());
        e = assertThrows(CheckpointException.class, () -> load(0x80, 2, ']', 'K', 1, 'K', 2, '.'));
        assertTrue(e.getMessage().contains("STOP with 2 values left"), e.getMessage());
    }

    @Test
    void namespacesAndOrderedDictsAreRebuiltAsDicts() {
        // argparse.Namespace() via NEWOBJ + BUILD {'lr': 0.5}; OrderedDict([('k', 1)]) via REDUCE
        Object ns = load(0x80, 2, 'c', "argparse\nNamespace\n", ')', 0x81, '}', 'X', 2, 0, 0, 0, "lr",
                'G', 0x3F, 0xE0, 0, 0, 0, 0, 0, 0, 's', 'b', '.');
        assertEquals(Map.of("lr", 0.5), ns);
        Object od = load(0x80, 2, 'c', "collections\nOrderedDict\n", ']', 'X', 1, 0, 0, 0, "k", 'K', 1, 0x86,
                'a', 0x85, 'R', '.');
        assertEquals(Map.of("k", 1L), od);
    }
}
