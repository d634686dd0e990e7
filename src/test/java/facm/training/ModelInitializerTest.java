package facm.training;

import facm.backend.cpu.CpuBackend;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The §3.6 initialization: which tensors are zero, one, small normal or Xavier-uniform, and determinism. */
class ModelInitializerTest {
    private final Backend be = new CpuBackend(1);

    @Test
    void rulesOfSection36() {
        assertEquals(ModelInitializer.Rule.ZERO, ModelInitializer.rule("blocks.3.adaLN_modulation.1.weight"));
        assertEquals(ModelInitializer.Rule.ZERO, ModelInitializer.rule("final_layer.linear.weight"));
        assertEquals(ModelInitializer.Rule.ZERO, ModelInitializer.rule("r_embedder.mlp.2.weight"));
        assertEquals(ModelInitializer.Rule.ZERO, ModelInitializer.rule("t_embedder.mlp.0.bias"));
        assertEquals(ModelInitializer.Rule.ONE, ModelInitializer.rule("blocks.0.attn.q_norm.weight"));
        assertEquals(ModelInitializer.Rule.ONE, ModelInitializer.rule("final_layer.norm_final.weight"));
        assertEquals(ModelInitializer.Rule.SMALL_NORMAL, ModelInitializer.rule("t_embedder.mlp.2.weight"));
        assertEquals(ModelInitializer.Rule.SMALL_NORMAL, ModelInitializer.rule("y_embedder.embedding_table.weight"));
        assertEquals(ModelInitializer.Rule.XAVIER, ModelInitializer.rule("x_embedder.proj.weight"));
        assertEquals(ModelInitializer.Rule.XAVIER, ModelInitializer.rule("blocks.0.mlp.w12.weight"));
    }

    @Test
    void valuesFollowTheRulesAndTheSeed() {
        ModelConfig c = TrainingTestModels.micro();
        try (ModelWeights a = ModelInitializer.initialize(c, be, 4); ModelWeights b = ModelInitializer.initialize(c,
                be, 4); ModelWeights other = ModelInitializer.initialize(c, be, 5)) {
            a.requireComplete();
            for (ParameterTable.Entry e : a.table().entries()) {
                float[] v = be.download(a.get(e.key()));
                assertArrayEquals(v, be.download(b.get(e.key())), "same seed: " + e.key());
                if (e.kind() == ParameterTable.Kind.FIXED) {
                    continue;
                }
                switch (ModelInitializer.rule(e.key())) {
                    case ZERO -> assertTrue(allEqual(v, 0f), e.key());
                    case ONE -> assertTrue(allEqual(v, 1f), e.key());
                    case SMALL_NORMAL -> assertEquals(0.02, rms(v), 0.02 * 0.5, e.key());
                    case XAVIER -> {
                        long fanOut = e.shape()[0];
                        long fanIn = e.numel() / fanOut;
                        double bound = Math.sqrt(6.0 / (fanIn + fanOut));
                        for (float x : v) {
                            assertTrue(Math.abs(x) <= bound, e.key());
                        }
                        assertEquals(bound / Math.sqrt(3), rms(v), bound * 0.2, e.key());
                        assertTrue(!java.util.Arrays.equals(v, be.download(other.get(e.key()))), "seed matters");
                    }
                    default -> throw new AssertionError();
                }
            }
        }
    }

    private static boolean allEqual(float[] v, float x) {
        for (float f : v) {
            if (f != x) {
                return false;
            }
        }
        return true;
    }

    private static double rms(float[] v) {
        double s = 0;
        for (float f : v) {
            s += (double) f * f;
        }
        return Math.sqrt(s / v.length);
    }
}
