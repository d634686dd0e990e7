package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.model.ModelConfig;
import facm.model.Presets;
import facm.tensor.GemmPrecision;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole model's parameter gradients on the CPU backend against central differences of the fp32 forward, one
 * random direction per parameter tensor (every trainable tensor is checked). fp32 rounding of L limits the numeric
 * side to about 1e-7·|L|/h, so the tolerance is loose (2e-2 relative, or 2e-6 absolute for directions the loss
 * barely depends on); a wrong backward gives errors of order 1.
 */
class LightningDiTGradientTest {
    private static final double H = 1e-2;
    private static final double REL_TOL = 2e-2;
    private static final double ABS_TOL = 2e-6;

    @Test
    void tinyModelGradientsMatchCentralDifferences() {
        check(Presets.get("tiny"), "tiny");
    }

    @Test
    void variantWithAuxiliaryTimeAndWithoutQkNormMatchesCentralDifferences() {
        // depth 2, D 32, 2 heads (dh 16), patch 2 on 2×8×8 inputs (16 tokens), 5 classes; r embedder on, no qk-norm
        check(new ModelConfig("micro-aux", 2, 32, 2, 2, 8, 2, 5, false, true, true), "aux time, no qk-norm");
    }

    @Test
    void variantWithPatchOneAndNoRopeMatchesCentralDifferences() {
        check(new ModelConfig("micro-p1", 1, 24, 3, 1, 4, 3, 4, true, false, false), "patch 1, no RoPE");
    }

    private static void check(ModelConfig c, String what) {
        try (CpuBackend be = new CpuBackend(2);
             ModelGradientCheck m = new ModelGradientCheck(be, c, 1234, GemmPrecision.FP32);
             Gradients g = new Gradients(m.weights)) {
            m.backward(g);
            List<ModelGradientCheck.Direction> ds = m.directions(g, H);
            String table = ModelGradientCheck.table(ds);
            System.out.println("[LightningDiTGradientTest] " + what + ", h = " + H + ":\n" + table);
            for (ModelGradientCheck.Direction d : ds) {
                double diff = Math.abs(d.analytic() - d.numeric());
                assertTrue(diff <= REL_TOL * Math.abs(d.numeric()) || diff <= ABS_TOL,
                        what + ": " + d.key() + " analytic " + d.analytic() + " vs numeric " + d.numeric() + "\n"
                                + table);
            }
        }
    }

    @Test
    void bf16GradientsAreCloseToFp32() {
        ModelConfig c = Presets.get("tiny");
        try (CpuBackend be = new CpuBackend(2);
             ModelGradientCheck fp32 = new ModelGradientCheck(be, c, 1234, GemmPrecision.FP32);
             ModelGradientCheck bf16 = new ModelGradientCheck(be, c, 1234, GemmPrecision.BF16);
             Gradients g32 = new Gradients(fp32.weights);
             Gradients g16 = new Gradients(bf16.weights)) {
            fp32.backward(g32);
            bf16.backward(g16);
            double l32 = fp32.loss();
            double l16 = bf16.loss();
            Map<String, Double> errs = ModelGradientCheck.compare(be, g16, be, g32);
            double worst = errs.values().stream().mapToDouble(Double::doubleValue).max().orElse(0);
            System.out.printf("[LightningDiTGradientTest] bf16 vs fp32: loss %.6f vs %.6f, worst per-tensor gradient "
                    + "error %.3e%n", l16, l32, worst);
            assertTrue(Math.abs(l16 - l32) < 1e-2, "bf16 loss " + l16 + " vs fp32 " + l32);
            errs.forEach((k, e) -> assertTrue(e < 0.1, "bf16 gradient of " + k + " differs from fp32 by " + e));
        }
    }
}
