package facm.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ParameterTableTest {

    @Test
    void xl1CountsMatchTheSpec() {
        // facm-spec.md §3.3: 675,260,768 with qk-norm including pos_embed; 674,965,856 trainable.
        ParameterTable t = ParameterTable.of(Presets.get("XL/1"));
        assertEquals(675_260_768L, t.parameterCount());
        assertEquals(674_965_856L, t.trainableCount());
        ModelConfig c = Presets.get("XL/1");
        ModelConfig noQk = new ModelConfig("x", c.depth(), c.hidden(), c.heads(), c.patch(), c.inputSize(),
                c.inChannels(), c.numClasses(), false, true, false);
        assertEquals(675_256_736L, ParameterTable.of(noQk).parameterCount());
    }

    @Test
    void familyCountsMatchTheSpecTable() {
        // §3.5, in millions with two decimals
        assertMillions(130.56, "B/1");
        assertMillions(130.56, "B/2");
        assertMillions(458.16, "L/2");
        assertMillions(675.26, "XL/2");
        assertMillions(1029.40, "1p0B/1");
        assertMillions(1631.77, "1p6B/2");
    }

    private static void assertMillions(double expected, String preset) {
        double m = ParameterTable.of(Presets.get(preset)).parameterCount() / 1e6;
        assertEquals(expected, Math.round(m * 100) / 100.0, 1e-9, preset);
    }

    @Test
    void officialShapes() {
        ParameterTable t = ParameterTable.of(Presets.get("XL/1"));
        assertArrayEquals(new int[] {1152, 32, 1, 1}, t.get("x_embedder.proj.weight").shape());
        assertArrayEquals(new int[] {1001, 1152}, t.get("y_embedder.embedding_table.weight").shape());
        assertArrayEquals(new int[] {256, 72}, t.get("feat_rope.freqs_cos").shape());
        assertArrayEquals(new int[] {6144, 1152}, t.get("blocks.27.mlp.w12.weight").shape());
        assertArrayEquals(new int[] {1152, 3072}, t.get("blocks.0.mlp.w3.weight").shape());
        assertArrayEquals(new int[] {6912, 1152}, t.get("blocks.3.adaLN_modulation.1.weight").shape());
        assertArrayEquals(new int[] {2304, 1152}, t.get("final_layer.adaLN_modulation.1.weight").shape());
        assertArrayEquals(new int[] {72}, t.get("blocks.5.attn.q_norm.weight").shape());
        assertTrue(!t.contains("r_embedder.mlp.0.weight"));
        ModelConfig c = Presets.get("B/2");
        assertArrayEquals(new int[] {128, 768}, ParameterTable.of(c).get("final_layer.linear.weight").shape());
    }

    @Test
    void configValidationAndJson() {
        assertThrows(IllegalArgumentException.class,
                () -> new ModelConfig("bad", 2, 65, 4, 2, 32, 1, 10, true, true, false));
        assertThrows(IllegalArgumentException.class,
                () -> new ModelConfig("bad", 2, 64, 4, 3, 32, 1, 10, true, true, false));
        ModelConfig tiny = Presets.get("tiny");
        assertEquals(tiny, ModelConfig.fromJson(tiny.toJson()));
        assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromJson("{\"depth\":0}"));
        assertThrows(IllegalArgumentException.class, () -> Presets.get("XXL/7"));
        assertEquals(Presets.get("XL/1"), Presets.get("xl-1"));
        assertEquals(170, tiny.mlpHidden());
        assertEquals(2730, Presets.get("L/2").mlpHidden());
    }
}
