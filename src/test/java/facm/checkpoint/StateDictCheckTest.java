package facm.checkpoint;

import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class StateDictCheckTest {

    @Test
    void reportsMissingUnexpectedAndWrongShapesOneLineEach() {
        Map<String, int[]> expected = new LinkedHashMap<>();
        expected.put("x_embedder.proj.weight", new int[] {768, 32, 1, 1});
        expected.put("blocks.3.attn.qkv.weight", new int[] {3456, 1152});
        expected.put("pos_embed", new int[] {1, 256, 1152});
        Map<String, int[]> found = new LinkedHashMap<>();
        found.put("x_embedder.proj.weight", new int[] {1152, 32, 1, 1});
        found.put("pos_embed", new int[] {1, 256, 1152});
        found.put("foo", new int[] {});
        assertEquals(List.of(
                "'x_embedder.proj.weight' in FILE has shape [1152,32,1,1], expected [768,32,1,1]",
                "missing key 'blocks.3.attn.qkv.weight' in FILE",
                "unexpected key 'foo' in FILE"), StateDictCheck.problems(expected, found, "FILE"));
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> StateDictCheck.verify(expected, found, "FILE"));
        assertEquals("'x_embedder.proj.weight' in FILE has shape [1152,32,1,1], expected [768,32,1,1] (2 more "
                + "problems; in all 1 missing, 1 unexpected, 1 with the wrong shape)", e.getMessage());

        found.remove("foo");
        found.put("blocks.3.attn.qkv.weight", new int[] {3456, 1152});
        found.put("x_embedder.proj.weight", new int[] {768, 32, 1, 1});
        StateDictCheck.verify(expected, found, "FILE");
        found.remove("pos_embed");
        e = assertThrows(CheckpointException.class, () -> StateDictCheck.verify(expected, found, "m.pt"));
        assertEquals("missing key 'pos_embed' in m.pt", e.getMessage());
    }
}
