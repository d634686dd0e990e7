package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.model.ModelConfig;
import facm.model.Presets;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * BF16 attention in training passes (ForwardPass.Bf16Training attention): the bf16-head forms of qkNormRope and its
 * JVP against the f32 forms rounded (to the bit), and whole FM and JVP passes with bf16 attention against the same
 * passes with the f32 attention, within the bf16 tolerance of LightningDiTGradientTest (loss-side output rel L2
 * 2e-2, per-tensor gradient relative L2 error 0.1). The whole-pass checks run where the backend's attention takes
 * bf16 heads ({@code attentionTakes(BF16)}); elsewhere they are skipped visibly.
 */
class Bf16AttentionTrainingTest {
    static final double OUTPUT_REL_L2 = 2e-2;
    static final double GRADIENT_REL_L2 = 0.1;

    @Test
    void bf16HeadsFromAnF32QkvAreTheF32HeadsRounded() {
        try (CpuBackend be = new CpuBackend(2);
             Tensor qkv = be.empty("qkv", DType.F32, 2, 3, 3 * 2 * 4);
             Tensor qkvDot = be.empty("qkvDot", DType.F32, 2, 3, 3 * 2 * 4);
             Tensor qw = be.empty("qw", DType.F32, 4); Tensor kw = be.empty("kw", DType.F32, 4)) {
            be.randomNormal(qkv, 3, 0);
            be.randomNormal(qkvDot, 4, 0);
            be.randomNormal(qw, 5, 0);
            be.randomNormal(kw, 6, 0);
            for (boolean jvp : new boolean[] {false, true}) {
                Tensor[] f32 = new Tensor[6];
                Tensor[] bf16 = new Tensor[6];
                for (int i = 0; i < 6; i++) {
                    f32[i] = be.empty("f" + i, DType.F32, 2, 2, 3, 4);
                    bf16[i] = be.empty("b" + i, DType.BF16, 2, 2, 3, 4);
                }
                try {
                    if (jvp) {
                        be.network().qkNormRopeJvp(qkv, qkvDot, 2, qw, kw, 1e-6f, null, null, f32[0], f32[1], f32[2],
                                f32[3], f32[4], f32[5], null);
                        be.network().qkNormRopeJvp(qkv, qkvDot, 2, qw, kw, 1e-6f, null, null, bf16[0], bf16[1],
                                bf16[2], bf16[3], bf16[4], bf16[5], null);
                    } else {
                        be.network().qkNormRope(qkv, 2, qw, kw, 1e-6f, null, null, f32[0], f32[1], f32[2], null);
                        be.network().qkNormRope(qkv, 2, qw, kw, 1e-6f, null, null, bf16[0], bf16[1], bf16[2], null);
                    }
                    for (int i = 0; i < (jvp ? 6 : 3); i++) {
                        try (Tensor rounded = be.convert(f32[i], DType.BF16)) {
                            assertArrayEquals(be.downloadBf16(rounded), be.downloadBf16(bf16[i]),
                                    (jvp ? "JVP " : "") + "output " + i);
                        }
                    }
                } finally {
                    for (int i = 0; i < 6; i++) {
                        f32[i].close();
                        bf16[i].close();
                    }
                }
            }
        }
    }

    /** Runs FM or JVP passes with f32 and with bf16 attention on {@code be} and checks them against each other. */
    static void assertCloseToF32Attention(Backend be, ModelConfig c, int batch, boolean jvp) {
        Assumptions.assumeTrue(be.network().attentionTakes(DType.BF16),
                "the attention of " + be.getClass().getSimpleName() + " does not take bf16 heads (yet)");
        TrainingPassRun f32 = TrainingPassRun.run(be, c, batch, 91, jvp,
                m -> m.precision(GemmPrecision.BF16).bf16Attention(false));
        TrainingPassRun bf16 = TrainingPassRun.run(be, c, batch, 91, jvp,
                m -> m.precision(GemmPrecision.BF16).bf16Attention(true));
        String what = c.name() + (jvp ? " JVP" : " FM");
        double out = relL2(f32.output(), bf16.output());
        double tangent = jvp ? relL2(f32.tangent(), bf16.tangent()) : 0;
        double worst = 0;
        String worstKey = "";
        for (Map.Entry<String, float[]> g : f32.grads().entrySet()) {
            double e = relL2(g.getValue(), bf16.grads().get(g.getKey()));
            if (e > worst) {
                worst = e;
                worstKey = g.getKey();
            }
        }
        System.out.printf("[Bf16AttentionTrainingTest] %s on %s: bf16 vs f32 attention: output rel L2 %.2e, tangent "
                + "%.2e, worst gradient %.2e (%s)%n", what, be.getClass().getSimpleName(), out, tangent, worst,
                worstKey);
        assertTrue(out < OUTPUT_REL_L2 && tangent < OUTPUT_REL_L2, what + ": output " + out + ", tangent " + tangent);
        assertTrue(out > 0, what + ": the bf16 attention must actually run");
        assertTrue(worst < GRADIENT_REL_L2, what + ": gradient of " + worstKey + " off by " + worst);
        assertEquals(f32.grads().keySet(), bf16.grads().keySet());
    }

    static double relL2(float[] ref, float[] got) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            assertTrue(Float.isFinite(got[i]), "non-finite value at " + i);
            double d = got[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    @Test
    void fmPassWithBf16AttentionStaysCloseOnTheCpu() {
        try (CpuBackend be = new CpuBackend(2)) {
            assertCloseToF32Attention(be, Presets.get("tiny"), 2, false);
        }
    }

    @Test
    void jvpPassWithBf16AttentionStaysCloseOnTheCpu() {
        try (CpuBackend be = new CpuBackend(2)) {
            assertCloseToF32Attention(be, Presets.get("tiny"), 2, true);
        }
    }
}
