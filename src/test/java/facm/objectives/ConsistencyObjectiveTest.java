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

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The parts of the stage-2 objectives that the reference fixture test (ConsistencyFixtureTest) does not pin down. */
class ConsistencyObjectiveTest {
    private static final ModelConfig TINY_C4 = Presets.get("tiny").withData(16, 4, 10);

    private static ConsistencyObjective.Options facm() {
        return ConsistencyObjective.Options.defaults(ConsistencyObjective.Kind.FACM);
    }

    private static ConsistencyObjective.Options with(ConsistencyObjective.Kind kind, float cfgScale, float r2t) {
        ConsistencyObjective.Options d = ConsistencyObjective.Options.defaults(kind);
        return new ConsistencyObjective.Options(kind, d.timeSampler(), d.timeMean(), d.timeStd(), d.relaxP(), cfgScale,
                d.cfgLow(), d.cfgHigh(), d.clip(), d.normEps(), d.scmWarmup(), r2t);
    }

    @Test
    void defaultTimeSamplerHasTheSpecsQuantiles() {
        TimeSampler ts = new TimeSampler(facm());
        int n = 200_000;
        float[] t = new float[n];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            t[i] = ts.time(42, i);
            sum += t[i];
            assertTrue(t[i] >= 0 && t[i] <= 1, "t in [0, 1]");
        }
        Arrays.sort(t);
        // facm-spec.md §5.2a: quantiles 5/25/50/75/95 % = 0.10 / 0.41 / 0.73 / 0.90 / 0.98, mean 0.645
        double[] q = {0.05, 0.25, 0.5, 0.75, 0.95};
        double[] want = {0.10, 0.41, 0.73, 0.90, 0.98};
        for (int k = 0; k < q.length; k++) {
            assertEquals(want[k], t[(int) (q[k] * n)], 0.01, "quantile " + q[k]);
        }
        assertEquals(0.645, sum / n, 0.005, "mean t");
        ConsistencyObjective.Options d = facm();
        TimeSampler log = new TimeSampler(new ConsistencyObjective.Options(d.kind(), "log", d.timeMean(), d.timeStd(),
                d.relaxP(), d.cfgScale(), d.cfgLow(), d.cfgHigh(), d.clip(), d.normEps(), d.scmWarmup(), 0f));
        float[] l = new float[n];
        for (int i = 0; i < n; i++) {
            l[i] = log.time(42, i);
        }
        Arrays.sort(l);
        assertEquals(1 - 1 / (1 + Math.exp(0.8)), l[n / 2], 0.01, "log sampler median = 1 − sigmoid(−0.8)");
    }

    @Test
    void drawsDependOnKeyAndSampleOnlyAndMeanFlowOrdersTheTimes() {
        TimeSampler ts = new TimeSampler(facm());
        assertArrayEquals(Arrays.copyOf(ts.draws(7, 64).t(), 8), ts.draws(7, 8).t(), "a sample's t must not depend on B");
        assertTrue(ts.draws(7, 8).r() == null);
        TimeSampler mf = new TimeSampler(with(ConsistencyObjective.Kind.MEANFLOW, 1.75f, 0f));
        TimeSampler.Draws d = mf.draws(9, 256);
        int equal = 0;
        for (int i = 0; i < 256; i++) {
            assertTrue(d.t()[i] <= d.r()[i], "t <= r");
            equal += d.t()[i] == d.r()[i] ? 1 : 0;
        }
        assertEquals(0, equal, "ratio 0: r differs from t");
        TimeSampler.Draws all = new TimeSampler(with(ConsistencyObjective.Kind.MEANFLOW, 1.75f, 1f)).draws(9, 16);
        assertArrayEquals(all.t(), all.r(), "ratio 1: r = t");
        TimeSampler.Draws half = new TimeSampler(with(ConsistencyObjective.Kind.MEANFLOW, 1.75f, 0.5f)).draws(9, 4000);
        int same = 0;
        for (int i = 0; i < 4000; i++) {
            same += half.t()[i] == half.r()[i] ? 1 : 0;
        }
        assertEquals(2000, same, 150, "ratio 0.5: about half the samples get r = t");
    }

    @Test
    void coefficientsPerKind() {
        float[] t = {0.25f, 0.81f};
        float[] r = {0.5f, 0.9f};
        float[] c = new ConsistencyObjective(0, GemmPrecision.FP32, facm(), null).coefficients(t, null, 0);
        assertArrayEquals(new float[] {0.75f, 0.5f, (float) Math.cos(Math.PI * 0.125), 0.19f, (float) (1 - Math.sqrt(0.81f)),
            (float) Math.cos(Math.PI * 0.81f / 2)}, c, 1e-6f);
        float[] m = new ConsistencyObjective(0, GemmPrecision.FP32, with(ConsistencyObjective.Kind.MEANFLOW, 1.75f, 0),
                null).coefficients(t, r, 0);
        assertArrayEquals(new float[] {0.25f, 1, 1, 0.09f, 1, 1}, m, 1e-6f);
        float[] s = new ConsistencyObjective(0, GemmPrecision.FP32, with(ConsistencyObjective.Kind.SCM, 1.75f, 0), null)
                .coefficients(t, null, 2500);
        assertArrayEquals(new float[] {0.75f * 0.25f, (float) Math.cos(Math.PI * 0.125), 1, 0.19f * 0.25f,
            (float) Math.cos(Math.PI * 0.81f / 2), 1}, s, 1e-6f);
    }

    @Test
    void guidedVelocityFollowsTheIntervalRule() {
        try (CpuBackend be = new CpuBackend();
             ModelWeights sw = ModelWeights.philox(TINY_C4, be, 1234);
             ModelWeights tw = ModelWeights.philox(TINY_C4, be, 4321)) {
            LightningDiT student = new LightningDiT(sw);
            LightningDiT teacher = new LightningDiT(tw);
            int b = 3;
            int n = b * 4 * 16 * 16;
            float[] xs = new float[n];
            float[] us = new float[n];
            for (int i = 0; i < n; i++) {
                xs[i] = Philox.normal(1, i);
                us[i] = Philox.normal(2, i);
            }
            float[] t = {0.05f, 0.5f, 1.0f}; // below the interval, inside, at its (inclusive) top
            int[] y = {3, 1, 7};
            assertArrayEquals(new int[] {3, 10, 10}, TeacherVelocity.unguidedLabels(facm(), y, t, 10));
            try (Tensor x = be.upload("x", xs, b, 4, 16, 16); Tensor u = be.upload("u", us, b, 4, 16, 16);
                 Tensor tt = be.upload("t", t, b); Tensor yy = be.upload("y", y, b);
                 Tensor yNull = be.upload("y'", new int[] {3, 10, 10}, b);
                 Tensor vc = teacher.forward(x, tt, yy); Tensor vuT = teacher.forward(x, tt, yNull);
                 Tensor vuS = student.forward(x, tt, yNull);
                 Tensor distilled = TeacherVelocity.velocity(facm(), student, teacher, x, u, t, tt, yy, y);
                 Tensor scratch = TeacherVelocity.velocity(facm(), student, null, x, u, t, tt, yy, y);
                 Tensor plainT = TeacherVelocity.velocity(with(ConsistencyObjective.Kind.FACM, 1f, 0), student,
                         teacher, x, u, t, tt, yy, y);
                 Tensor plainU = TeacherVelocity.velocity(with(ConsistencyObjective.Kind.FACM, 1f, 0), student, null,
                         x, u, t, tt, yy, y)) {
                float[] c = be.download(vc);
                float[] ut = be.download(vuT);
                float[] us2 = be.download(vuS);
                float[] d = be.download(distilled);
                float[] s = be.download(scratch);
                for (int i = 0; i < n; i++) {
                    assertEquals(ut[i] + 1.75f * (c[i] - ut[i]), d[i], 1e-5f, "distilled v at " + i);
                    assertEquals(us2[i] + 1.75f * (us[i] - us2[i]), s[i], 1e-5f, "from-scratch v at " + i);
                }
                int per = n / b;
                for (int i = 0; i < per; i++) {
                    assertEquals(c[i], d[i], 1e-5f, "outside the interval the guidance is off: v = v_c");
                }
                assertArrayEquals(c, be.download(plainT), "w <= 1: v = teacher");
                assertArrayEquals(us, be.download(plainU), "w <= 1 without teacher: v = u");
            }
        }
    }

    @Test
    void modelRulesAreCheckedWithClearErrors() {
        try (CpuBackend be = new CpuBackend(); ModelWeights plain = ModelWeights.philox(TINY_C4, be, 1);
             ModelWeights aux = ModelWeights.philox(TINY_C4.withAuxTime(true), be, 1);
             ModelWeights other = ModelWeights.philox(Presets.get("tiny"), be, 1);
             Gradients g = new Gradients(plain)) {
            Batch batch = new Batch(new float[2 * 4 * 16 * 16], new int[] {2, 4, 16, 16}, new int[] {1, 2}, 2);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new ConsistencyObjective(0,
                    GemmPrecision.FP32, with(ConsistencyObjective.Kind.MEANFLOW, 1.75f, 0), null)
                    .lossAndGradients(plain, g, batch, 0));
            assertTrue(e.getMessage().contains("auxiliary time"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> new ConsistencyObjective(0, GemmPrecision.FP32,
                    with(ConsistencyObjective.Kind.SCM, 1.75f, 0), null).lossAndGradients(aux, null, batch, 0));
            assertTrue(e.getMessage().contains("auxiliary time"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> new ConsistencyObjective(0, GemmPrecision.FP32,
                    facm(), other).lossAndGradients(plain, g, batch, 0));
            assertTrue(e.getMessage().contains("does not fit"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> new ConsistencyObjective.Options(
                    ConsistencyObjective.Kind.FACM, "uniform", -0.8f, 1.6f, 0.5f, 1.75f, 0.125f, 1f, 1f, 1e-3f, 0, 0f));
            assertTrue(e.getMessage().startsWith("facm objective: time sampler"), e.getMessage());
            assertEquals(DType.F32, plain.get("x_embedder.proj.weight").dtype());
        }
    }
}
