package facm.objectives;

import facm.autograd.Gradients;
import facm.backend.cpu.CpuBackend;
import facm.data.Batch;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FlowMatchingObjectiveTest {
    private static final ModelConfig TINY = Presets.get("tiny");
    private static final FlowMatchingObjective.Options DEFAULTS = FlowMatchingObjective.Options.defaults();
    /** Four channels: with one channel the cosine term is ±1 per pixel and its gradient vanishes almost everywhere. */
    private static final ModelConfig TINY_C4 = TINY.withData(16, 4, 10);

    private static Batch batch(int b, long seed) {
        return batch(b, seed, 1, 32);
    }

    private static Batch batch(int b, long seed, int channels, int size) {
        int n = b * channels * size * size;
        float[] images = new float[n];
        for (int i = 0; i < n; i++) {
            images[i] = Philox.normal(seed, i) * 0.5f;
        }
        int[] labels = new int[b];
        for (int i = 0; i < b; i++) {
            labels[i] = i % 10;
        }
        return new Batch(images, new int[] {b, channels, size, size}, labels, b);
    }

    @Test
    void drawsDependOnSeedStepAndSampleIndexOnly() {
        FlowMatchingObjective fm = new FlowMatchingObjective(5, GemmPrecision.FP32, DEFAULTS);
        int[] labels = new int[64];
        FlowMatchingObjective.Draws small = fm.draws(3, java.util.Arrays.copyOf(labels, 8), 10);
        FlowMatchingObjective.Draws big = fm.draws(3, labels, 10);
        assertArrayEquals(small.t(), java.util.Arrays.copyOf(big.t(), 8), "a sample's t must not depend on B");
        assertArrayEquals(small.labels(), java.util.Arrays.copyOf(big.labels(), 8));
        assertNotEquals(fm.draws(4, labels, 10).t()[0], big.t()[0], "another step draws anew");
        int dropped = 0;
        int total = 0;
        double tSum = 0;
        for (long step = 0; step < 400; step++) {
            FlowMatchingObjective.Draws d = fm.draws(step, labels, 10);
            for (int i = 0; i < labels.length; i++) {
                assertTrue(d.t()[i] > 0 && d.t()[i] < 1);
                tSum += d.t()[i];
                dropped += d.labels()[i] == 10 ? 1 : 0;
                total++;
            }
        }
        assertEquals(0.1, dropped / (double) total, 0.01, "label dropout rate");
        assertEquals(0.5, tSum / total, 0.01, "mean of t ~ U(0,1)");
        FlowMatchingObjective none = new FlowMatchingObjective(5, GemmPrecision.FP32,
                new FlowMatchingObjective.Options(0f, true));
        assertArrayEquals(labels, none.draws(3, labels, 10).labels());
        assertThrows(IllegalArgumentException.class, () -> new FlowMatchingObjective.Options(1.5f, true));
    }

    /** x_t, τ (2 − t for the second half), target and loss recomputed by hand from the same draws. */
    @Test
    void lossMatchesAHandAssembledForwardWithTheExpandedInterval() {
        Batch batch = batch(4, 9);
        for (boolean expanded : new boolean[] {true, false}) {
            FlowMatchingObjective fm = new FlowMatchingObjective(21, GemmPrecision.FP32,
                    new FlowMatchingObjective.Options(0.5f, expanded));
            try (CpuBackend be = new CpuBackend(2);
                 ModelWeights w = ModelWeights.philox(TINY, be, 1234);
                 Gradients g = new Gradients(w)) {
                float loss = fm.lossAndGradients(w, g, batch, 17);
                FlowMatchingObjective.Draws d = fm.draws(17, batch.labels(), 10);
                Tensor eps = be.empty(DType.F32, 4, 1, 32, 32);
                fm.noise(17, eps);
                float[] e = be.download(eps);
                float[] xt = new float[e.length];
                float[] u = new float[e.length];
                float[] tau = new float[4];
                for (int i = 0; i < 4; i++) {
                    tau[i] = expanded && i >= 2 ? 2 - d.t()[i] : d.t()[i];
                    for (int j = 0; j < 1024; j++) {
                        int k = i * 1024 + j;
                        xt[k] = d.t()[i] * batch.images()[k] + (1 - d.t()[i]) * e[k];
                        u[k] = batch.images()[k] - e[k];
                    }
                }
                Tensor f = new LightningDiT(w).forward(be.upload("xt", xt, 4, 1, 32, 32), be.upload("tau", tau, 4),
                        be.upload("y", d.labels(), 4));
                Tensor per = be.empty(DType.F32, 4);
                be.training().flowMatchingLoss(f, be.upload("u", u, 4, 1, 32, 32), per, null, 0.25f);
                double want = 0;
                for (float v : be.download(per)) {
                    want += v / 4;
                }
                assertEquals(want, loss, 1e-5 * Math.abs(want), "expanded interval " + expanded);
                Map<String, Double> m = fm.lastMetrics();
                assertEquals(loss, m.get("mse") + m.get("cos"), 1e-5, "mse + cos terms add up to the loss");
                assertTrue(m.get("mse") > 0 && m.get("cos") > 0);
            }
        }
    }

    @Test
    void sameStepRepeatsBitForBitAndGradientsAccumulate() {
        Batch batch = batch(2, 3);
        FlowMatchingObjective fm = new FlowMatchingObjective(8, GemmPrecision.FP32, DEFAULTS);
        try (CpuBackend be = new CpuBackend(2);
             ModelWeights w = ModelWeights.philox(TINY, be, 1234);
             Gradients g = new Gradients(w)) {
            float l1 = fm.lossAndGradients(w, g, batch, 5);
            float[] g1 = be.download(g.get("blocks.1.mlp.w3.weight"));
            float l2 = new FlowMatchingObjective(8, GemmPrecision.FP32, FlowMatchingObjective.Options.defaults())
                    .lossAndGradients(w, g, batch, 5);
            float[] g2 = be.download(g.get("blocks.1.mlp.w3.weight"));
            assertEquals(l1, l2, 0f, "a fresh objective (a resumed run) repeats the step exactly");
            for (int i = 0; i < g1.length; i++) {
                assertEquals(2 * g1[i], g2[i], 1e-6f * Math.abs(g1[i]) + 1e-12f, "grads accumulate");
            }
            assertNotEquals(l1, fm.lossAndGradients(w, g, batch, 6), "the next step draws new t and noise");
        }
    }

    /** d loss / dθ along a random direction of one weight tensor vs central differences of the objective's loss. */
    @Test
    void lossGradientMatchesCentralDifferences() {
        Batch batch = batch(2, 4, 4, 16);
        FlowMatchingObjective fm = new FlowMatchingObjective(2, GemmPrecision.FP32, DEFAULTS);
        try (CpuBackend be = new CpuBackend(2);
             ModelWeights w = ModelWeights.philox(TINY_C4, be, 1234);
             Gradients g = new Gradients(w)) {
            fm.lossAndGradients(w, g, batch, 0);
            for (String key : new String[] {"blocks.0.attn.qkv.weight", "final_layer.linear.weight",
                    "y_embedder.embedding_table.weight", "t_embedder.mlp.2.weight"}) {
                float[] p = be.download(w.get(key));
                float[] grad = be.download(g.get(key));
                float scale = 3e-3f * (key.startsWith("y_") ? 0.3f : 1f);
                double[] an = new double[2];
                double[] num = new double[2];
                for (int h = 0; h < 2; h++) { // steps s and s/2, for a Richardson extrapolation of the O(s²) error
                    float[] plus = new float[p.length];
                    float[] minus = new float[p.length];
                    for (int i = 0; i < p.length; i++) {
                        float step = scale / (1 << h) * Philox.normal(99, i);
                        plus[i] = p[i] + step;
                        minus[i] = p[i] - step;
                        an[h] += grad[i] * (((double) plus[i] - minus[i]) / 2) * (1 << h);
                    }
                    w.set(key, plus);
                    double lp = fm.lossAndGradients(w, null, batch, 0);
                    w.set(key, minus);
                    double lm = fm.lossAndGradients(w, null, batch, 0);
                    num[h] = (lp - lm) / 2 * (1 << h);
                }
                w.set(key, p);
                double analytic = an[1];
                double numeric = (4 * num[1] - num[0]) / 3;
                System.out.printf("[FlowMatchingObjectiveTest] %-36s analytic %+.6e numeric %+.6e (plain %+.6e)%n",
                        key, analytic, numeric, num[1]);
                assertEquals(numeric, analytic, 5e-3 * Math.abs(numeric) + 2e-6, key);
            }
        }
    }

    @Test
    void bf16LossIsWithinOneHundredthOfFp32() {
        Batch batch = batch(4, 6);
        try (CpuBackend be = new CpuBackend(2);
             ModelWeights w = ModelWeights.philox(TINY, be, 1234)) {
            float l32 = new FlowMatchingObjective(3, GemmPrecision.FP32, FlowMatchingObjective.Options.defaults())
                    .lossAndGradients(w, null, batch, 1);
            float l16 = new FlowMatchingObjective(3, GemmPrecision.BF16, FlowMatchingObjective.Options.defaults())
                    .lossAndGradients(w, null, batch, 1);
            System.out.printf("[FlowMatchingObjectiveTest] tiny FM loss fp32 %.6f, bf16 %.6f%n", l32, l16);
            assertEquals(l32, l16, 1e-2);
        }
    }
}
