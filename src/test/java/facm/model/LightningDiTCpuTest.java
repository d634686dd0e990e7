package facm.model;

import facm.backend.cpu.CpuBackend;
import facm.sampling.ConsistencySampler;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LightningDiTCpuTest {

    @Test
    void tinyForwardIsFiniteDeterministicAndDependsOnEveryInput() {
        try (CpuBackend be = new CpuBackend(2);
             ModelWeights w = ModelWeights.philox(Presets.get("tiny"), be, 7)) {
            LightningDiT m = new LightningDiT(w);
            Tensor x = be.empty(DType.F32, 2, 1, 32, 32);
            be.randomNormal(x, 1, 0);
            Tensor t = be.upload("t", new float[] {0.3f, 1.7f}, 2);
            Tensor y = be.upload("y", new int[] {3, 10}, 2);
            float[] a = be.download(m.forward(x, t, y));
            float[] b = be.download(m.forward(x, t, y));
            assertArrayEquals(a, b);
            for (float v : a) {
                assertTrue(Float.isFinite(v));
            }
            Tensor t2 = be.upload("t", new float[] {0.31f, 1.7f}, 2);
            float[] c = be.download(m.forward(x, t2, y));
            assertTrue(c[0] != a[0], "output must depend on t");
            assertTrue(c[a.length - 1] == a[a.length - 1], "sample 1 must not depend on sample 0's time");
        }
    }

    @Test
    void badInputsAreRejectedWithTheExpectedShape() {
        try (CpuBackend be = new CpuBackend(1);
             ModelWeights w = ModelWeights.philox(Presets.get("tiny"), be, 7)) {
            LightningDiT m = new LightningDiT(w);
            Tensor x = be.zeros(DType.F32, 2, 3, 32, 32);
            Tensor t = be.zeros(DType.F32, 2);
            Tensor y = be.upload("y", new int[] {1, 2}, 2);
            ShapeException e = assertThrows(ShapeException.class, () -> m.forward(x, t, y));
            assertTrue(e.getMessage().contains("[B,1,32,32]"), e.getMessage());
        }
    }

    @Test
    void consistencySamplerIsSeedDeterministic() {
        try (CpuBackend be = new CpuBackend(2);
             ModelWeights w = ModelWeights.philox(Presets.get("tiny"), be, 3)) {
            LightningDiT m = new LightningDiT(w);
            Tensor z = be.empty(DType.F32, 2, 1, 32, 32);
            be.randomNormal(z, 11, 0);
            Tensor y = be.upload("y", new int[] {0, 9}, 2);
            float[] s1 = be.download(ConsistencySampler.sample(m, z, y, 2, 11));
            float[] s2 = be.download(ConsistencySampler.sample(m, z, y, 2, 11));
            float[] s3 = be.download(ConsistencySampler.sample(m, z, y, 2, 12));
            assertArrayEquals(s1, s2);
            assertTrue(s1[5] != s3[5], "a different seed re-noises differently");
        }
    }
}
