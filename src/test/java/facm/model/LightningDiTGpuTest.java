package facm.model;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole forward pass on CUDA against the CPU reference, same Philox weights and inputs. Tolerance: relative L2
 * error 1e-4 and max abs error 1e-3·max|ref| (fp32 GEMMs on both sides; only the summation order differs).
 */
@Tag("gpu")
class LightningDiTGpuTest {

    static double[] compare(ModelConfig c, int batch, long seed) {
        CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        try (CpuBackend cpu = new CpuBackend()) {
            float[] ref = run(cpu, c, batch, seed);
            float[] got = run(gpu, c, batch, seed);
            double num = 0;
            double den = 0;
            double maxAbs = 0;
            double maxRef = 0;
            for (int i = 0; i < ref.length; i++) {
                assertTrue(Float.isFinite(got[i]), "non-finite CUDA output at " + i);
                double d = got[i] - ref[i];
                num += d * d;
                den += (double) ref[i] * ref[i];
                maxAbs = Math.max(maxAbs, Math.abs(d));
                maxRef = Math.max(maxRef, Math.abs(ref[i]));
            }
            return new double[] {Math.sqrt(num / den), maxAbs, maxRef};
        }
    }

    static float[] run(Backend be, ModelConfig c, int batch, long seed) {
        try (ModelWeights w = ModelWeights.philox(c, be, seed)) {
            Tensor x = be.empty("x", DType.F32, batch, c.inChannels(), c.inputSize(), c.inputSize());
            be.randomNormal(x, seed + 1, 0);
            float[] ts = new float[batch];
            int[] ys = new int[batch];
            for (int i = 0; i < batch; i++) {
                ts[i] = i % 2 == 0 ? 0.1f + 0.8f * i / batch : 1.9f - 0.5f * i / batch;
                ys[i] = i == batch - 1 ? c.nullClass() : (7 * i + 3) % c.numClasses();
            }
            try (Tensor t = be.upload("t", ts, batch); Tensor y = be.upload("y", ys, batch);
                 Tensor out = new LightningDiT(w).forward(x, t, y)) {
                float[] o = be.download(out);
                x.close();
                return o;
            }
        }
    }

    @Test
    void tinyMatchesCpu() {
        double[] r = compare(Presets.get("tiny"), 3, 21);
        System.out.printf("[LightningDiTGpuTest] tiny: rel L2 %.2e, max abs %.2e (max |ref| %.2f)%n", r[0], r[1], r[2]);
        assertTrue(r[0] < 1e-4 && r[1] < 1e-3 * r[2], "tiny: rel " + r[0] + " maxAbs " + r[1]);
    }

    @Test
    void b1ShapedMatchesCpu() {
        double[] r = compare(Presets.get("B/1").withDepth(2), 2, 99);
        System.out.printf("[LightningDiTGpuTest] B/1 depth 2: rel L2 %.2e, max abs %.2e (max |ref| %.2f)%n", r[0], r[1], r[2]);
        assertTrue(r[0] < 1e-4 && r[1] < 1e-3 * r[2], "B/1: rel " + r[0] + " maxAbs " + r[1]);
    }
}
