package facm.model;

import facm.checkpoint.SafetensorsReader;
import facm.sampling.ConsistencySampler;
import facm.sampling.EulerSampler;
import facm.tensor.Backend;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The forward pass, the samplers and checkpoint loading against the PyTorch reference fixtures, on one backend.
 * Tolerances are max|err|/max|ref| against float64 reference outputs stored as float32.
 */
abstract class ReferenceFixtureChecks {

    abstract Backend backend();

    /** fp32 forward vs the fp64 reference (the reference measured 3e-7..5e-7 for its own fp32 forward). */
    abstract double tolerance();

    private void check(String what, float[] got, float[] ref) {
        double e = ReferenceFixtures.relMaxError(got, ref);
        System.out.printf("[%s] %s: max|err|/max|ref| = %.2e (tolerance %.0e)%n", getClass().getSimpleName(), what, e,
                tolerance());
        assertTrue(e < tolerance(), what + ": error " + e + " >= " + tolerance());
    }

    private float[] forward(ModelWeights w, SafetensorsReader r) {
        Backend be = w.backend();
        try (Tensor x = be.upload("x", r.readFloats("input.x"), r.shape("input.x"));
             Tensor t = be.upload("t", r.readFloats("input.t"), r.shape("input.t"));
             Tensor y = be.upload("y", r.readInts("input.y"), r.shape("input.y"));
             Tensor f = new LightningDiT(w).forward(x, t, y)) {
            return be.download(f);
        }
    }

    @Test
    void tinyForwardMatchesReference() {
        try (SafetensorsReader r = ReferenceFixtures.open("tiny_forward.safetensors");
             ModelWeights w = ReferenceFixtures.weightsFrom(r, ReferenceFixtures.config(r), backend())) {
            check("tiny forward", forward(w, r), r.readFloats("output.f"));
        }
    }

    @Test
    void b1ShapedForwardWithPhiloxWeightsMatchesReference() {
        try (SafetensorsReader r = ReferenceFixtures.open("b1_forward.safetensors");
             ModelWeights w = ModelWeights.philox(ReferenceFixtures.config(r), backend(),
                     Long.parseLong(r.metadata().get("seed")))) {
            // the first 8 values of every random tensor, in the reference's sorted key order
            List<String> keys = com.google.gson.JsonParser.parseString(r.metadata().get("weight_keys")).getAsJsonArray()
                    .asList().stream().map(com.google.gson.JsonElement::getAsString).toList();
            float[] head = r.readFloats("debug.weight_head");
            for (int k = 0; k < keys.size(); k++) {
                float[] ours = backend().download(w.get(keys.get(k)));
                for (int i = 0; i < 8; i++) {
                    float ref = head[k * 8 + i];
                    assertTrue(Math.abs(ours[i] - ref) <= 2 * Math.ulp(ref),
                            keys.get(k) + "[" + i + "]: " + ours[i] + " vs reference " + ref);
                }
            }
            check("B/1 depth-2 forward", forward(w, r), r.readFloats("output.f"));
        }
    }

    @Test
    void samplersMatchReference() {
        try (SafetensorsReader weights = ReferenceFixtures.open("tiny_forward.safetensors");
             SafetensorsReader r = ReferenceFixtures.open("tiny_sampler.safetensors");
             ModelWeights w = ReferenceFixtures.weightsFrom(weights, ReferenceFixtures.config(r), backend())) {
            Backend be = backend();
            LightningDiT m = new LightningDiT(w);
            float[] noise1 = r.readFloats("input.noise1");
            try (Tensor z = be.upload("z", r.readFloats("input.z"), r.shape("input.z"));
                 Tensor y = be.upload("y", r.readInts("input.y"), r.shape("input.y"))) {
                check("consistency 1 step", download(ConsistencySampler.sample(m, z, y, 1, k -> noise1)),
                        r.readFloats("output.nfe1"));
                check("consistency 2 steps", download(ConsistencySampler.sample(m, z, y, 2, k -> noise1)),
                        r.readFloats("output.nfe2"));
                EulerSampler.Options o = new EulerSampler.Options(4, 1.5f, 0.125f, 1f, 1f, false, false);
                check("euler 4 steps cfg 1.5", download(EulerSampler.sample(m, z, y, o)), r.readFloats("output.euler4"));
                EulerSampler.Options fm = new EulerSampler.Options(4, 1.5f, 0.125f, 1f, 1f, false, true);
                check("euler 4 steps, FM branch (2 - t)", download(EulerSampler.sample(m, z, y, fm)),
                        r.readFloats("output.euler4_fm"));
            }
        }
    }

    private float[] download(Tensor t) {
        try (t) {
            return t.backend().download(t);
        }
    }

    @Test
    void torchSavedCheckpointsLoadWithTheLoaderRule() throws IOException {
        ModelConfig tiny = Presets.get("tiny");
        try (SafetensorsReader r = ReferenceFixtures.open("tiny_forward.safetensors");
             ModelWeights ema = ModelCheckpoint.load(ReferenceFixtures.path("tiny_ema.pt"), tiny, backend());
             ModelWeights emas = ModelCheckpoint.load(ReferenceFixtures.path("tiny_emas.pt"), tiny, backend())) {
            // 'ema' of tiny_ema.pt is the fp32 Philox seed-1234 model: the same forward as the fixture
            check("tiny_ema.pt forward", forward(ema, r), r.readFloats("output.f"));
            // 'emas' → ema_models.1 of tiny_emas.pt is that model rounded to bf16
            for (ParameterTable.Entry e : ema.table().entries()) {
                if (e.kind() != ParameterTable.Kind.TRAINABLE) {
                    continue;
                }
                float[] exact = r.readFloats(e.key());
                float[] got = backend().download(emas.get(e.key()));
                for (int i = 0; i < exact.length; i++) {
                    assertTrue(got[i] == facm.tensor.Bf16.round(exact[i]), e.key() + "[" + i + "]");
                }
            }
        }
    }
}
