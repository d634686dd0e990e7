package facm.training;

import facm.backend.cpu.CpuBackend;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Power-function and classic EMAs: γ from σ_rel, β_k, the update rule on real tensors, and the spec parser. */
class EmaTest {
    private final Backend be = new CpuBackend(1);

    @Test
    void gammaIsTheLargestRealRootAsNumpyFindsIt() {
        // np.roots([1, 7, 16 - s, 12 - s]).real.max() with s = sigma_rel^-2 (ema_pytorch's sigma_rel_to_gamma)
        assertEquals(16.972198602303447, PowerEma.gamma(0.05), 1e-10);
        assertEquals(1.8262137798958404, PowerEma.gamma(0.2), 1e-10);
        assertEquals(6.937203937601809, PowerEma.gamma(0.1), 1e-10);
        assertEquals(0.16934399376949866, PowerEma.gamma(0.28), 1e-10);
        for (double s : new double[] {0.01, 0.05, 0.13, 0.2, 0.28}) {
            double g = PowerEma.gamma(s);
            double t = 1 / (s * s);
            assertEquals(0, ((g + 7) * g + 16 - t) * g + 12 - t, 1e-9 * t * g, "residual at sigma_rel " + s);
        }
        assertThrows(IllegalArgumentException.class, () -> PowerEma.gamma(0));
        assertThrows(IllegalArgumentException.class, () -> PowerEma.gamma(-0.1));
    }

    @Test
    void powerDecayFollowsTheSchedule() {
        try (ModelWeights w = TrainingTestModels.weights(be, 1); PowerEma e = new PowerEma(0.2, w)) {
            double g = PowerEma.gamma(0.2);
            assertEquals(0.0, e.decay(1), "the first update copies");
            assertEquals(Math.pow(2.0 / 3, 1 + g), e.decay(2), 1e-15);
            assertEquals(Math.pow(1 - 1.0 / 1001, 1 + g), e.decay(1000), 1e-15);
            assertEquals("power_0.2", e.name());
            assertEquals("power:0.2", e.spec());
        }
    }

    @Test
    void updatesAverageTheWeightsAsTheFormulaSays() {
        String key = "blocks.0.mlp.w3.bias";
        try (ModelWeights w = TrainingTestModels.weights(be, 1); EmaSet set = EmaSet.create("power:0.05,classic:0.9",
                w)) {
            PowerEma power = (PowerEma) set.get("power:0.05");
            ClassicEma classic = (ClassicEma) set.get("classic_0.9");
            float[] theta0 = be.download(w.get(key));
            assertArrayEquals(theta0, be.download(power.weights().get(key)), "starts as a copy");
            assertArrayEquals(be.download(w.get("pos_embed")), be.download(power.weights().get("pos_embed")));
            double[] p = new double[theta0.length];
            double[] c = new double[theta0.length];
            for (int i = 0; i < p.length; i++) {
                p[i] = theta0[i];
                c[i] = theta0[i];
            }
            for (int k = 1; k <= 4; k++) {
                Tensor t = w.get(key);
                be.randomNormal(t, 3, k * 1000L);
                float[] theta = be.download(t);
                set.update(w);
                double bp = power.decay(k);
                for (int i = 0; i < p.length; i++) {
                    p[i] = bp * p[i] + (1 - bp) * theta[i];
                    c[i] = 0.9 * c[i] + 0.1 * theta[i];
                }
                if (k == 1) {
                    assertArrayEquals(theta, be.download(power.weights().get(key)), "first power update = copy");
                }
            }
            assertEquals(4, power.updates());
            assertEquals(4, classic.updates());
            float[] gotP = be.download(power.weights().get(key));
            float[] gotC = be.download(classic.weights().get(key));
            for (int i = 0; i < p.length; i++) {
                assertEquals(p[i], gotP[i], 1e-6, "power " + i);
                assertEquals(c[i], gotC[i], 1e-6, "classic " + i);
            }
            assertEquals(classic, set.forSampling(), "the last one listed samples");
            assertEquals("power:0.05,classic:0.9", set.spec());
        }
    }

    @Test
    void specParsing() {
        assertEquals(List.of(new EmaSet.Spec("power", 0.05), new EmaSet.Spec("power", 0.2)),
                EmaSet.parse(" power:0.05, POWER:0.2 "));
        assertTrue(EmaSet.parse("none").isEmpty());
        assertTrue(EmaSet.parse("").isEmpty());
        assertEquals("classic:0.0001", EmaSet.parse("classic:1e-4").get(0).toString());
        for (String bad : new String[] {"power", "power:x", "mean:0.2", "classic:1", "power:0.2,power:0.2",
                "power:5"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> EmaSet.parse(bad), bad);
            assertTrue(!e.getMessage().contains("\n"));
        }
        try (ModelWeights w = TrainingTestModels.weights(be, 1); EmaSet none = EmaSet.create("none", w)) {
            assertEquals(null, none.forSampling());
            assertEquals("none", none.spec());
            assertThrows(IllegalArgumentException.class, () -> none.get("power_0.2"));
        }
    }
}
