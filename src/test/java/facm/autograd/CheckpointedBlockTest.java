package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Activation checkpointing per block (LightningDiT.checkpointBlocks, CheckpointedBlock): the FM pass gives the same
 * output and parameter gradients to the bit as without it (the recomputation repeats the same operations; see
 * CheckpointedBlock for why the changed sums are exact), in FP32 and in BF16 with the bf16 operand forms, and the
 * tape holds less for the backward.
 */
class CheckpointedBlockTest {

    static void assertSameGradients(Backend be, ModelConfig c, int batch, GemmPrecision precision) {
        TrainingPassRun plain = TrainingPassRun.run(be, c, batch, 55, false, m -> m.precision(precision));
        TrainingPassRun ckpt = TrainingPassRun.run(be, c, batch, 55, false,
                m -> m.precision(precision).checkpointBlocks(true));
        String what = c.name() + " " + precision;
        assertArrayEquals(plain.output(), ckpt.output(), what + ": output");
        plain.grads().forEach((k, g) -> assertArrayEquals(g, ckpt.grads().get(k), what + ": gradient of " + k));
    }

    @Test
    void checkpointedBlocksGiveTheSameGradientsInFp32() {
        try (CpuBackend be = new CpuBackend(2)) {
            assertSameGradients(be, Presets.get("tiny"), 2, GemmPrecision.FP32);
        }
    }

    @Test
    void checkpointedBlocksGiveTheSameGradientsInBf16() {
        try (CpuBackend be = new CpuBackend(2)) {
            assertSameGradients(be, Presets.get("tiny"), 2, GemmPrecision.BF16);
            assertSameGradients(be, new ModelConfig("micro-aux", 2, 32, 2, 2, 8, 2, 5, false, true, true), 2,
                    GemmPrecision.BF16);
        }
    }

    @Test
    void theTapeKeepsLessWithCheckpointedBlocks() {
        ModelConfig c = Presets.get("tiny");
        try (CpuBackend be = new CpuBackend(2)) {
            long plain = savedBytes(be, c, false);
            long ckpt = savedBytes(be, c, true);
            System.out.printf("[CheckpointedBlockTest] tiny depth %d: saved for the backward %d bytes, checkpointed "
                    + "%d%n", c.depth(), plain, ckpt);
            assertTrue(ckpt * 3 < plain, "checkpointed " + ckpt + " vs " + plain);
        }
    }

    private static long savedBytes(Backend be, ModelConfig c, boolean checkpoint) {
        try (ModelWeights w = ModelWeights.philox(c, be, 3); Gradients g = new Gradients(w);
             Tape tape = Tape.forParameters(w, g);
             Tensor x = be.zeros(DType.F32, 2, c.inChannels(), c.inputSize(), c.inputSize());
             Tensor t = be.upload("t", new float[] {0.3f, 0.6f}, 2);
             Tensor y = be.upload("y", new int[] {1, 2}, 2)) {
            LightningDiT m = new LightningDiT(w).precision(GemmPrecision.BF16).checkpointBlocks(checkpoint);
            try (Tensor f = m.forward(x, t, y, c.auxTime() ? t : null, tape)) {
                return tape.savedBytes();
            }
        }
    }
}
