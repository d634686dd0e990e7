package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.model.ModelConfig;
import facm.model.Presets;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * BF16 training passes whose norms and swiglu write the bf16 GEMM operand themselves (ForwardPass.Bf16Training
 * operands) against the same passes casting in the linears: the output, the JVP tangent and every parameter gradient
 * must agree to the bit, for the FM form (forward + backward) and the JVP form (forward mode with a tape). The f32
 * attention is kept on both sides (bf16 attention changes numerics and is tested elsewhere).
 */
class Bf16OperandFusionTest {

    /** Asserts that the fused and the cast set-ups of {@code c} give the same bits on {@code be}. */
    static void assertBitIdentical(Backend be, ModelConfig c, int batch, boolean jvp) {
        TrainingPassRun cast = TrainingPassRun.run(be, c, batch, 77, jvp,
                m -> m.precision(GemmPrecision.BF16).bf16Operands(false).bf16Attention(false));
        TrainingPassRun fused = TrainingPassRun.run(be, c, batch, 77, jvp,
                m -> m.precision(GemmPrecision.BF16).bf16Operands(true).bf16Attention(false));
        String what = c.name() + (jvp ? " JVP" : " FM");
        assertArrayEquals(cast.output(), fused.output(), what + ": output");
        if (jvp) {
            assertArrayEquals(cast.tangent(), fused.tangent(), what + ": tangent");
        }
        assertEquals(cast.grads().keySet(), fused.grads().keySet());
        cast.grads().forEach((k, g) -> assertArrayEquals(g, fused.grads().get(k), what + ": gradient of " + k));
        assertFalse(cast.grads().values().stream().allMatch(g -> java.util.Arrays.equals(g, new float[g.length])),
                what + ": the gradients must not all be zero");
    }

    @Test
    void fusedOperandsGiveTheSameLossInputsAndGradientsOnTheCpu() {
        try (CpuBackend be = new CpuBackend(2)) {
            assertBitIdentical(be, Presets.get("tiny"), 2, false);
        }
    }

    @Test
    void fusedOperandsGiveTheSameJvpAndGradientsOnTheCpu() {
        try (CpuBackend be = new CpuBackend(2)) {
            assertBitIdentical(be, Presets.get("tiny"), 2, true);
        }
    }

    @Test
    void theFusedPassWritesBf16OperandsAndSavesThemForTheWeightGradient() {
        try (CpuBackend be = new CpuBackend(2); Tape tape = new Tape(be);
             Tensor x = tape.track(be.upload("x", new float[] {1f, -2f, 3f, 0.5f, 2f, 1f, -1f, 4f}, 2, 4));
             Tensor w = be.upload("w", new float[] {1f, 1.5f, 0.5f, 2f}, 4);
             Tensor gu = tape.track(be.upload("gu", new float[] {1f, -2f, 3f, 0.5f, 2f, 1f, -1f, 4f}, 2, 4));
             ForwardPass pass = ForwardPass.bf16Training(be, tape, ForwardPass.Bf16Training.OPERANDS)) {
            Tensor n = pass.rmsNormModulate("n", x, w, 1e-6f, null, 0, 0);
            Tensor s = pass.swiglu("s", gu);
            assertEquals(DType.BF16, n.dtype(), "norm output");
            assertEquals(DType.BF16, s.dtype(), "swiglu output");
            try (Tensor proj = be.upload("proj", new float[] {1f, 0f, 0f, 1f, 1f, 1f, 0f, 2f}, 2, 4);
                 Tensor projGrad = be.zeros(DType.F32, 2, 4)) {
                tape.trackParameter(proj, projGrad);
                Tensor o = pass.linear("o", n, proj, null);
                pass.release(n);
                assertFalse(n.isClosed(), "the tape keeps the bf16 operand for the weight gradient");
                assertEquals(DType.F32, o.dtype());
            }
            pass.release(s);
        }
    }

    @Test
    void auxTimeVariantWithoutQkNormIsBitIdenticalToo() {
        try (CpuBackend be = new CpuBackend(2)) {
            ModelConfig c = new ModelConfig("micro-aux", 2, 32, 2, 2, 8, 2, 5, false, true, true);
            assertBitIdentical(be, c, 2, false);
            assertBitIdentical(be, c, 2, true);
        }
    }
}
