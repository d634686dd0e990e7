package facm.model;

import facm.backend.cpu.CpuBackend;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The tape-less BF16 forward with bf16 activations (ForwardPass.bf16Inference) against the f32 forward of the same
 * Philox weights and inputs, and the bf16 weight cache. Tolerance: relative L2 error 2e-2 of the whole output, which
 * bf16 GEMM operands and activations (8 significant bits, ~2e-3 per rounding, over a few dozen roundings in a row)
 * stay well inside (about 5e-3 measured on tiny); the f32-activation BF16 forward is printed next to it.
 */
class LightningDiTBf16Test {
    static final double REL_L2 = 2e-2;

    /** The output of one forward of model {@code c} (Philox weights of {@code seed}), the model set up by setup. */
    static float[] run(Backend be, ModelConfig c, int batch, long seed, Consumer<LightningDiT> setup) {
        try (ModelWeights w = ModelWeights.philox(c, be, seed)) {
            LightningDiT m = new LightningDiT(w);
            setup.accept(m);
            try {
                return forward(be, m, batch, seed);
            } finally {
                m.cacheBf16Weights(false); // frees the copies, if setup made a cache
            }
        }
    }

    static float[] forward(Backend be, LightningDiT m, int batch, long seed) {
        ModelConfig c = m.config();
        float[] ts = new float[batch];
        int[] ys = new int[batch];
        for (int i = 0; i < batch; i++) {
            ts[i] = i % 2 == 0 ? 0.1f + 0.8f * i / batch : 1.9f - 0.5f * i / batch;
            ys[i] = i == batch - 1 ? c.nullClass() : (7 * i + 3) % c.numClasses();
        }
        try (Tensor x = be.empty("x", DType.F32, batch, c.inChannels(), c.inputSize(), c.inputSize());
             Tensor t = be.upload("t", ts, batch); Tensor y = be.upload("y", ys, batch)) {
            be.randomNormal(x, seed + 1, 0);
            try (Tensor out = m.forward(x, t, y, c.auxTime() ? t : null)) {
                assertEquals(DType.F32, out.dtype(), "the model's output stays f32");
                return be.download(out);
            }
        }
    }

    static double relL2(float[] ref, float[] got) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            assertTrue(Float.isFinite(got[i]), "non-finite output at " + i);
            double d = got[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }

    @Test
    void bf16ActivationsStayCloseToTheF32Forward() {
        ModelConfig c = Presets.get("tiny");
        try (CpuBackend be = new CpuBackend(2)) {
            float[] f32 = run(be, c, 3, 21, m -> m.precision(GemmPrecision.FP32));
            float[] bf16Act = run(be, c, 3, 21, m -> m.precision(GemmPrecision.BF16));
            float[] f32Act = run(be, c, 3, 21, m -> m.precision(GemmPrecision.BF16).bf16Activations(false));
            double relAct = relL2(f32, bf16Act);
            double relCast = relL2(f32, f32Act);
            System.out.printf("[LightningDiTBf16Test] tiny vs fp32: bf16 activations rel L2 %.2e, f32 activations "
                    + "(bf16 GEMM operands only) %.2e%n", relAct, relCast);
            assertTrue(relAct < REL_L2, "bf16 activations: rel L2 " + relAct);
            assertTrue(relAct > 0, "the bf16-activation pass must actually differ from fp32");
        }
    }

    @Test
    void weightCacheGivesTheSameOutputAndFollowsInvalidate() {
        ModelConfig c = Presets.get("tiny");
        try (CpuBackend be = new CpuBackend(2); ModelWeights w = ModelWeights.philox(c, be, 5)) {
            LightningDiT plain = new LightningDiT(w).precision(GemmPrecision.BF16);
            LightningDiT cached = new LightningDiT(w).precision(GemmPrecision.BF16).cacheBf16Weights(true);
            float[] a = forward(be, plain, 2, 5);
            float[] b = forward(be, cached, 2, 5);
            assertArrayEquals(a, b, "a cached bf16 copy is the same cast");
            assertArrayEquals(b, forward(be, cached, 2, 5), "a second pass reuses the copies");
            // An in-place weight update: stale until invalidated, then the same as an uncached pass.
            be.fill(w.get("final_layer.linear.bias"), 0.25f);
            be.fill(w.get("blocks.0.mlp.w3.weight"), 0.01f);
            float[] fresh = forward(be, plain, 2, 5);
            assertFalse(java.util.Arrays.equals(a, fresh), "the update changes the output");
            cached.invalidateBf16Weights();
            assertArrayEquals(fresh, forward(be, cached, 2, 5));
            cached.cacheBf16Weights(false);
        }
    }
}
