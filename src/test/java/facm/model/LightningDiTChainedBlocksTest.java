package facm.model;

import facm.autograd.Tape;
import facm.backend.cpu.CpuBackend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * The chained tape-less block path of {@link LightningDiT} (each block's modulation computed before the previous
 * block's gate_m residual, which is fused with this block's norm1, and the last one with the final norm) against the
 * plain {@link LightningDiT#block} loop ({@code chainBlocks(false)}, and a pass with a tape, which always runs the
 * loop). On the CPU the fused residual-plus-norm op is the two ops in sequence, so the outputs must be equal bit for
 * bit. Three blocks, so that block i's modulation, block i+1's and the final layer's are all distinct and a chaining
 * that paired a residual or norm with the wrong block's modulation changes the output (checked below by swapping two
 * blocks' adaLN weights, which is what such a mix-up amounts to).
 */
class LightningDiTChainedBlocksTest {
    /** tiny4 with three blocks and the auxiliary time input (r), which adds its embedding to the conditioning. */
    static final ModelConfig THREE_BLOCKS = new ModelConfig("tiny4-depth3", 3, 64, 4, 4, 32, 1, 10, true, true, true);
    static final int BATCH = 3;
    static final long SEED = 41;

    static float[] run(CpuBackend be, ModelWeights w, Consumer<LightningDiT> setup) {
        LightningDiT m = new LightningDiT(w);
        setup.accept(m);
        return LightningDiTBf16Test.forward(be, m, BATCH, SEED);
    }

    @Test
    void chainedBlocksEqualTheBlockLoopBitForBit() {
        try (CpuBackend be = new CpuBackend(2); ModelWeights w = ModelWeights.philox(THREE_BLOCKS, be, SEED)) {
            record Mode(String name, Consumer<LightningDiT> setup) {
            }
            Mode[] modes = {
                new Mode("fp32", m -> m.precision(GemmPrecision.FP32)),
                new Mode("bf16, bf16 activations", m -> m.precision(GemmPrecision.BF16)),
                new Mode("bf16, f32 activations", m -> m.precision(GemmPrecision.BF16).bf16Activations(false)),
            };
            for (Mode mode : modes) {
                float[] chained = run(be, w, mode.setup());
                float[] loop = run(be, w, mode.setup().andThen(m -> m.chainBlocks(false)));
                assertArrayEquals(loop, chained, mode.name() + ": chained tape-less blocks vs the block loop");
            }
        }
    }

    @Test
    void chainedFp32ForwardEqualsTheTapedForward() {
        try (CpuBackend be = new CpuBackend(2); ModelWeights w = ModelWeights.philox(THREE_BLOCKS, be, SEED)) {
            float[] chained = run(be, w, m -> m.precision(GemmPrecision.FP32));
            LightningDiT m = new LightningDiT(w);
            float[] ts = new float[BATCH];
            int[] ys = new int[BATCH];
            for (int i = 0; i < BATCH; i++) { // the inputs of LightningDiTBf16Test.forward
                ts[i] = i % 2 == 0 ? 0.1f + 0.8f * i / BATCH : 1.9f - 0.5f * i / BATCH;
                ys[i] = i == BATCH - 1 ? THREE_BLOCKS.nullClass() : (7 * i + 3) % THREE_BLOCKS.numClasses();
            }
            try (Tensor x = be.empty("x", DType.F32, BATCH, 1, 32, 32); Tensor t = be.upload("t", ts, BATCH);
                 Tensor y = be.upload("y", ys, BATCH); Tape tape = new Tape(be)) {
                be.randomNormal(x, SEED + 1, 0);
                try (Tensor out = m.forward(x, t, y, t, tape)) {
                    assertArrayEquals(be.download(out), chained, "tape-less chained forward vs the taped forward");
                }
            }
        }
    }

    /** The equality above is not vacuous: which block's modulation drives which norm and residual shows up. */
    @Test
    void swappingTwoBlocksModulationsChangesTheOutput() {
        try (CpuBackend be = new CpuBackend(2); ModelWeights w = ModelWeights.philox(THREE_BLOCKS, be, SEED)) {
            float[] reference = run(be, w, m -> m.precision(GemmPrecision.BF16));
            for (int i = 0; i + 1 < THREE_BLOCKS.depth(); i++) {
                swapModulation(be, w, i, i + 1);
                float[] swapped = run(be, w, m -> m.precision(GemmPrecision.BF16));
                swapModulation(be, w, i, i + 1);
                assertEquals(reference.length, swapped.length);
                assertFalse(Arrays.equals(reference, swapped),
                        "blocks " + i + " and " + (i + 1) + " with each other's adaLN weights give the same output");
            }
            assertArrayEquals(reference, run(be, w, m -> m.precision(GemmPrecision.BF16)), "weights restored");
        }
    }

    private static void swapModulation(CpuBackend be, ModelWeights w, int i, int j) {
        for (String part : new String[] {"weight", "bias"}) {
            String a = "blocks." + i + ".adaLN_modulation.1." + part;
            String b = "blocks." + j + ".adaLN_modulation.1." + part;
            float[] va = be.download(w.get(a));
            float[] vb = be.download(w.get(b));
            w.set(a, vb);
            w.set(b, va);
        }
    }
}
