package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * What the tape holds per block, against the account in LightningDiT's javadoc: in units of one fp32 activation
 * [B,T,D], 13 + 3F/D in FP32 (h twice, normed twice, qkv 3, q/k/v 3, attention out, two branch outputs, w12 out 2F/D,
 * SwiGLU out F/D) plus per-row statistics; BF16 keeps bf16 casts of the normed inputs and the SwiGLU output instead
 * (12.5 + 2.5F/D) plus the block's bf16 weights.
 */
class ActivationMemoryTest {

    private static long saved(ModelConfig c, GemmPrecision p) {
        try (CpuBackend be = new CpuBackend(1);
             ModelWeights w = ModelWeights.philox(c, be, 1);
             Gradients g = new Gradients(w);
             Tape tape = Tape.forParameters(w, g)) {
            Tensor x = be.zeros(DType.F32, 2, c.inChannels(), c.inputSize(), c.inputSize());
            Tensor t = be.upload("t", new float[] {0.5f, 1.5f}, 2);
            Tensor y = be.upload("y", new int[] {1, 2}, 2);
            try (Tensor out = new LightningDiT(w).precision(p).bf16Attention(false).forward(x, t, y, null, tape)) {
                return tape.savedBytes();
            }
        }
    }

    @Test
    void perBlockActivationMemoryMatchesTheDocumentedAccount() {
        ModelConfig two = new ModelConfig("mem2", 2, 96, 4, 2, 16, 4, 10, true, true, false);
        ModelConfig four = new ModelConfig("mem4", 4, 96, 4, 2, 16, 4, 10, true, true, false);
        double unit = 2.0 * two.tokens() * two.hidden() * 4; // bytes of one fp32 [B,T,D]
        double ratio = two.mlpHidden() / (double) two.hidden();
        // The account is of the f32 attention (bf16 heads and output would halve those terms).
        for (GemmPrecision p : new GemmPrecision[] {GemmPrecision.FP32, GemmPrecision.BF16}) {
            double perBlock = (saved(four, p) - saved(two, p)) / 2.0 / unit;
            // per-row statistics: rstd of 2 norms (2/D) and of q,k per head (2H/D), lse (H/D), and mod [B,6D] (6/T)
            double small = (2.0 + 3 * two.heads()) / two.hidden() + 6.0 / two.tokens();
            // BF16: bf16 casts (half size) of the normed inputs, the attention output and the SwiGLU output, which the
            // linears keep; the attention output's fp32 original stays too (the attention backward reads it); and
            // the block's bf16 weights: 2 bytes × (10D² + 3FD)
            double weights = 2.0 * (10.0 * two.hidden() * two.hidden() + 3.0 * two.mlpHidden() * two.hidden()) / unit;
            // (and each block's adaLN linear keeps its own bf16 cast of SiLU(c) [B,D]: 0.5/T)
            double want = p == GemmPrecision.FP32 ? 13 + 3 * ratio : 12.5 + 2.5 * ratio + weights + 0.5 / two.tokens();
            System.out.printf("[ActivationMemoryTest] %s: %.3f activations [B,T,D] per block (documented %.3f + "
                    + "statistics %.3f; F/D = %.3f)%n", p, perBlock, want, small, ratio);
            assertEquals(want + small, perBlock, 1e-9, p + ": the tape holds something unexpected");
        }
    }
}
