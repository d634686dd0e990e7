package facm.training;

import facm.autograd.Gradients;
import facm.backend.cpu.CpuBackend;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** AdamW against a float64 hand computation of PyTorch's formula, and the global gradient norm and clip factor. */
class AdamWTest {
    private final Backend be = new CpuBackend(1);

    /** Hand AdamW in float64 over host arrays (PyTorch's torch.optim.AdamW, decoupled decay, bias correction). */
    private static void handStep(double[] p, double[] g, double[] m, double[] v, AdamW.Options o, int step,
                                 double scale) {
        double bc1 = 1 - Math.pow(o.beta1(), step);
        double bc2 = 1 - Math.pow(o.beta2(), step);
        for (int i = 0; i < p.length; i++) {
            double gi = g[i] * scale;
            p[i] *= 1 - (double) o.lr() * o.weightDecay();
            m[i] = o.beta1() * m[i] + (1 - (double) o.beta1()) * gi;
            v[i] = o.beta2() * v[i] + (1 - (double) o.beta2()) * gi * gi;
            p[i] -= o.lr() * (m[i] / bc1) / (Math.sqrt(v[i] / bc2) + o.eps());
        }
    }

    private static double[] d(float[] f) {
        double[] r = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            r[i] = f[i];
        }
        return r;
    }

    @Test
    void threeStepsMatchHandComputationWithDecayAndGradScale() {
        TrainingOps ops = HostTrainingOps.of(be);
        AdamW.Options o = new AdamW.Options(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f);
        float[] scales = {1f, 0.5f, 0.25f};
        try (ModelWeights w = TrainingTestModels.weights(be, 7); Gradients g = new Gradients(w);
             AdamW adam = new AdamW(w, o, ops)) {
            Map<String, double[][]> ref = new HashMap<>();
            for (String k : g.asMap().keySet()) {
                int n = (int) w.get(k).numel();
                ref.put(k, new double[][] {d(be.download(w.get(k))), new double[n], new double[n]});
            }
            for (int step = 1; step <= 3; step++) {
                for (Map.Entry<String, Tensor> e : g.asMap().entrySet()) {
                    be.randomNormal(e.getValue(), 99 + step, e.getKey().hashCode() * 1000L);
                    double[][] r = ref.get(e.getKey());
                    handStep(r[0], d(be.download(e.getValue())), r[1], r[2], o, step, scales[step - 1]);
                }
                adam.update(w, g, scales[step - 1]);
                assertEquals(step, adam.step());
            }
            for (String k : g.asMap().keySet()) {
                double[][] r = ref.get(k);
                float[] p = be.download(w.get(k));
                float[] m = be.download(adam.firstMoments().get(k));
                float[] v = be.download(adam.secondMoments().get(k));
                for (int i = 0; i < p.length; i++) {
                    assertEquals(r[0][i], p[i], 1e-6 + 1e-6 * Math.abs(r[0][i]), k + " param " + i);
                    assertEquals(r[1][i], m[i], 1e-6 + 1e-5 * Math.abs(r[1][i]), k + " m " + i);
                    assertEquals(r[2][i], v[i], 1e-7 + 1e-5 * Math.abs(r[2][i]), k + " v " + i);
                }
            }
        }
    }

    @Test
    void restoredMomentsReplaceTheZeros() {
        try (ModelWeights w = TrainingTestModels.weights(be, 7);
             AdamW adam = new AdamW(w, new AdamW.Options(1e-3f, 0.9f, 0.999f, 1e-8f, 0f), HostTrainingOps.of(be))) {
            String k = "blocks.0.attn.qkv.bias";
            int n = (int) w.get(k).numel();
            float[] m = new float[n];
            float[] v = new float[n];
            m[3] = 2f;
            v[4] = 5f;
            adam.restoreMoments(k, m, v);
            adam.restoreStep(12);
            assertEquals(2f, be.download(adam.firstMoments().get(k))[3]);
            assertEquals(5f, be.download(adam.secondMoments().get(k))[4]);
            assertEquals(12, adam.step());
            assertThrows(IllegalArgumentException.class, () -> adam.restoreMoments(k, new float[n + 1], v));
            assertThrows(IllegalArgumentException.class, () -> adam.restoreMoments("pos_embed", m, v));
        }
    }

    @Test
    void optionsAreValidated() {
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Options(0f, 0.9f, 0.999f, 1e-8f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Options(1e-4f, 1f, 0.999f, 1e-8f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Options(1e-4f, 0.9f, -0.1f, 1e-8f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Options(1e-4f, 0.9f, 0.999f, 0f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Options(1e-4f, 0.9f, 0.999f, 1e-8f, -1f));
    }

    @Test
    void globalNormIsTheNormOfAllGradientsAndClipFollowsPyTorch() {
        TrainingOps ops = HostTrainingOps.of(be);
        try (ModelWeights w = TrainingTestModels.weights(be, 7); Gradients g = new Gradients(w);
             GradientNorm norm = new GradientNorm(be, ops)) {
            double sum = 0;
            long salt = 0;
            for (Tensor t : g.asMap().values()) {
                be.randomNormal(t, 5, salt++ << 32);
                for (float x : be.download(t)) {
                    sum += (double) x * x;
                }
            }
            double expected = Math.sqrt(sum);
            assertEquals(expected, norm.compute(g), 1e-5 * expected);
            assertEquals(expected, norm.compute(g), 1e-5 * expected, "the accumulator is reset every call");
        }
        assertEquals(1f, GradientNorm.clipFactor(0.5, 1.0));
        assertEquals((float) (1.0 / (4.0 + 1e-6)), GradientNorm.clipFactor(4.0, 1.0));
        assertEquals(1f, GradientNorm.clipFactor(1e9, 0), "max norm 0 = clipping off");
        assertEquals((float) (1.0 / (1.0 + 1e-6)), GradientNorm.clipFactor(1.0, 1.0), "clips at the boundary too");
    }
}
