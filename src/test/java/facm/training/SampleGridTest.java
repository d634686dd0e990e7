package facm.training;

import facm.backend.cpu.CpuBackend;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.sampling.EulerSampler;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The training grids: Euler for "fm" (noise and labels as before), the consistency sampler at NFE 1 and 2 for the
 * consistency objectives, with r = 1 for an auxiliary-time model (the CM branch, facm-spec.md §3.7, §7).
 */
class SampleGridTest {
    private static final long SEED = 11;
    /** The grid noise's seed: SEED xor the salt SampleGrid has always used (grids of old runs stay comparable). */
    private static final long GRID_NOISE_SEED = SEED ^ 0x5A3D1E6B9C47F201L;
    private final Backend be = new CpuBackend(2);

    private static ModelConfig auxMicro() {
        ModelConfig c = TrainingTestModels.micro();
        return new ModelConfig("micro-aux", c.depth(), c.hidden(), c.heads(), c.patch(), c.inputSize(), c.inChannels(),
                c.numClasses(), c.qkNorm(), c.rope(), true);
    }

    private Tensor gridNoise(ModelConfig c) {
        Tensor z = be.empty("z", DType.F32, SampleGrid.count(c), c.inChannels(), c.inputSize(), c.inputSize());
        be.randomNormal(z, GRID_NOISE_SEED, 0);
        return z;
    }

    /** F(z, τ = 0, y, r) for the grid's noise and labels. */
    private float[] networkAtZero(ModelWeights w, float r, float[] z) {
        ModelConfig c = w.config();
        int n = SampleGrid.count(c);
        float[] taus = new float[n];
        float[] rs = new float[n];
        Arrays.fill(rs, r);
        try (Tensor x = be.upload("x", z, n, c.inChannels(), c.inputSize(), c.inputSize());
             Tensor t = be.upload("t", taus, n);
             Tensor y = be.upload("y", SampleGrid.labels(c), n);
             Tensor rt = be.upload("r", rs, n);
             Tensor f = new LightningDiT(w).precision(GemmPrecision.FP32).forward(x, t, y, rt)) {
            return be.download(f);
        }
    }

    @Test
    void everyObjectiveButFlowMatchingUsesTheConsistencySampler() {
        assertFalse(SampleGrid.usesConsistencySampler("fm"));
        for (String o : new String[] {"facm", "scm", "meanflow"}) {
            assertTrue(SampleGrid.usesConsistencySampler(o), o);
        }
        assertArrayEquals(new int[] {1, 2}, SampleGrid.CONSISTENCY_NFES);
    }

    @Test
    void auxiliaryTimeModelSamplesTheCmBranchWithROne() {
        ModelConfig c = auxMicro();
        try (ModelWeights w = ModelWeights.philox(c, be, 4); Tensor zt = gridNoise(c)) {
            float[] z = be.download(zt);
            float[] one = networkAtZero(w, 1f, z);
            float[] want = new float[z.length];
            for (int i = 0; i < z.length; i++) {
                want[i] = (float) ((double) z[i] + one[i]); // x̂₁ = z + (1 − 0)·F(z, 0, y, r = 1)
            }
            float[] got = SampleGrid.consistencySamples(w, GemmPrecision.FP32, 1, SEED);
            assertArrayEquals(want, got, "NFE 1 = z + F(z, 0, y, r = 1)");
            assertFalse(Arrays.equals(one, networkAtZero(w, 0f, z)), "r matters for this model, so r = 1 was used");

            float[] two = SampleGrid.consistencySamples(w, GemmPrecision.FP32, 2, SEED);
            assertArrayEquals(two, SampleGrid.consistencySamples(w, GemmPrecision.FP32, 2, SEED), "same noise");
            assertFalse(Arrays.equals(got, two));
            assertEquals(SampleGrid.count(c) * c.inputSize() * c.inputSize(), two.length);
        }
    }

    @Test
    void flowMatchingGridIsTheEulerSamplerOnTheSameNoiseAsBefore() {
        ModelConfig c = TrainingTestModels.micro();
        try (ModelWeights w = ModelWeights.philox(c, be, 4); Tensor z = gridNoise(c);
             Tensor y = be.upload("y", SampleGrid.labels(c), SampleGrid.count(c));
             Tensor want = EulerSampler.sample(new LightningDiT(w).precision(GemmPrecision.FP32), z, y,
                     EulerSampler.Options.plain(3))) {
            assertArrayEquals(be.download(want), SampleGrid.eulerSamples(w, GemmPrecision.FP32, 3, SEED));
        }
        int[] labels = SampleGrid.labels(c);
        assertEquals(30, labels.length);
        assertEquals(2, labels[29]);
    }
}
