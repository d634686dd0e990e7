package facm.autograd;

import facm.checkpoint.SafetensorsReader;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.Tensor;
import facm.tensor.TensorScope;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole-network forward-mode derivative against {@code torch.func.jvp} in float64 (tiny_jvp.safetensors from
 * tools/reference/make_jvp_fixture.py): (F, Ḟ) of (x, τ) ↦ F(x, τ, y) with tangents (ẋ, τ̇). The reference's own fp32
 * model is off by 3.0e-7 (F) and 2.5e-7 (Ḟ) max|err|/max|ref|; the bound here is 1e-5.
 */
abstract class JvpFixtureChecks {
    static final double TOLERANCE = 1e-5;

    abstract Backend backend();

    static Path fixture() {
        try (InputStream in = JvpFixtureChecks.class.getResourceAsStream("/fixtures/tiny_jvp.safetensors")) {
            if (in == null) {
                throw new IllegalStateException("test resource /fixtures/tiny_jvp.safetensors is missing");
            }
            Path p = Files.createTempFile("tiny_jvp", ".safetensors");
            p.toFile().deleteOnExit();
            Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static double relMax(float[] got, float[] ref) {
        double err = 0;
        double scale = 0;
        for (int i = 0; i < ref.length; i++) {
            if (!Float.isFinite(got[i])) {
                return Double.POSITIVE_INFINITY;
            }
            err = Math.max(err, Math.abs((double) got[i] - ref[i]));
            scale = Math.max(scale, Math.abs(ref[i]));
        }
        return err / scale;
    }

    @Test
    void wholeNetworkJvpMatchesTorchFuncJvp() throws IOException {
        Backend be = backend();
        try (SafetensorsReader r = SafetensorsReader.open(fixture());
             TensorScope s = new TensorScope()) {
            ModelConfig c = ModelConfig.fromJson(r.metadata().get("config"));
            try (ModelWeights w = ModelWeights.philox(c, be, Long.parseLong(r.metadata().get("seed")))) {
                Tensor x = s.track(be.upload("x", r.readFloats("input.x"), r.shape("input.x")));
                Tensor xDot = s.track(be.upload("xdot", r.readFloats("input.xdot"), r.shape("input.xdot")));
                Tensor t = s.track(be.upload("t", r.readFloats("input.t"), r.shape("input.t")));
                Tensor tDot = s.track(be.upload("tdot", r.readFloats("input.tdot"), r.shape("input.tdot")));
                Tensor y = s.track(be.upload("y", r.readInts("input.y"), r.shape("input.y")));
                Dual d = new LightningDiT(w).jvp(x, xDot, t, tDot, y, null, null);
                s.track(d.primal());
                s.track(d.tangent());
                double ef = relMax(be.download(d.primal()), r.readFloats("output.f"));
                double ed = relMax(be.download(d.tangent()), r.readFloats("output.fdot"));
                System.out.printf("[%s] whole-network JVP vs torch.func.jvp (float64): F %.2e, Fdot %.2e "
                        + "(max|err|/max|ref|, bound %.0e)%n", getClass().getSimpleName(), ef, ed, TOLERANCE);
                assertTrue(ef < TOLERANCE, "primal error " + ef);
                assertTrue(ed < TOLERANCE, "tangent error " + ed);
            }
        }
    }
}
