package facm.sampling;

import facm.backend.cuda.CudaBackend;
import facm.cuda.ArenaStats;
import facm.cuda.CudaDevice;
import facm.cuda.CudaTestSupport;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The graphed forward against the eager one on the GPU: bit-identical outputs for two batch shapes, after the inputs
 * change, in fp32 and bf16, with the auxiliary time input; the samplers give the same samples with and without
 * graphs; closing gives the graphs' memory back.
 */
@Tag("gpu")
class GraphedForwardGpuTest {

    private record Inputs(Tensor x, Tensor t, Tensor y, Tensor r) implements AutoCloseable {
        @Override
        public void close() {
            x.close();
            t.close();
            y.close();
            if (r != null) {
                r.close();
            }
        }
    }

    private static Inputs inputs(CudaBackend be, ModelConfig c, int batch, long seed) {
        Tensor x = be.empty("x", DType.F32, batch, c.inChannels(), c.inputSize(), c.inputSize());
        be.randomNormal(x, seed, 0);
        float[] ts = new float[batch];
        float[] rs = new float[batch];
        int[] ys = new int[batch];
        for (int i = 0; i < batch; i++) {
            ts[i] = (float) ((seed * 7 + i * 13) % 97) / 97f;
            rs[i] = 0.5f + 0.5f * ts[i];
            ys[i] = i == batch - 1 ? c.nullClass() : (int) ((seed + 3L * i) % c.numClasses());
        }
        return new Inputs(x, be.upload("t", ts, batch), be.upload("y", ys, batch),
                c.auxTime() ? be.upload("r", rs, batch) : null);
    }

    private static void assertBitIdentical(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])) {
                throw new AssertionError(what + ": element " + i + " differs: eager " + want[i] + ", graph " + got[i]);
            }
        }
    }

    private static float[] eager(CudaBackend be, LightningDiT m, Inputs in) {
        try (Tensor o = m.forward(in.x(), in.t(), in.y(), in.r())) {
            return be.download(o);
        }
    }

    private static void checkModel(ModelConfig c, GemmPrecision precision, long seed) {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        CudaBackend be = CudaBackend.on(device);
        try (ModelWeights w = ModelWeights.philox(c, be, seed)) {
            LightningDiT m = new LightningDiT(w).precision(precision);
            int[] batches = {2, 3};
            for (int b : batches) { // eager first: lazily made state (cuBLASLt workspace, plans) exists before
                try (Inputs in = inputs(be, c, b, seed)) {
                    eager(be, m, in);
                }
            }
            be.synchronize();
            ArenaStats before = device.arena().stats();
            try (GraphedForward g = new GraphedForward(m)) {
                for (int round = 0; round < 2; round++) {
                    for (int b : batches) {
                        try (Inputs in = inputs(be, c, b, seed + 100L * round + b)) {
                            float[] want = eager(be, m, in);
                            try (Tensor got = g.forward(in.x(), in.t(), in.y(), in.r())) {
                                assertBitIdentical(want, be.download(got), c.name() + " " + precision + " batch " + b
                                        + " round " + round);
                            }
                        }
                    }
                }
                assertEquals(2, g.graphCount());
                int[] shape = {2, c.inChannels(), c.inputSize(), c.inputSize()};
                assertTrue(g.nodeCount(shape, c.auxTime()) > 10, "nodes " + g.nodeCount(shape, c.auxTime()));
                assertTrue(device.arena().stats().poolBytes() > 0);
            }
            ArenaStats after = device.arena().stats();
            assertEquals(0, after.poolBytes(), device.arena().report());
            assertEquals(before.inUseBytes(), after.inUseBytes(), "closing gives every graph block back: before "
                    + before + ", after " + after);
        }
    }

    @Test
    void tinyFp32ForwardIsBitIdenticalForTwoBatchShapes() {
        checkModel(Presets.get("tiny"), GemmPrecision.FP32, 5);
    }

    @Test
    void bf16AndAuxTimeForwardIsBitIdentical() {
        checkModel(Presets.get("tiny").withAuxTime(true), GemmPrecision.BF16, 9);
    }

    @Test
    void samplersGiveTheSameSamplesWithAndWithoutGraphs() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        CudaBackend be = CudaBackend.on(device);
        ModelConfig c = Presets.get("tiny");
        try (ModelWeights w = ModelWeights.philox(c, be, 31);
             Inputs in = inputs(be, c, 3, 31)) {
            LightningDiT m = new LightningDiT(w).precision(GemmPrecision.TF32);
            try (ConsistencySampler graphed = new ConsistencySampler(m, true);
                 ConsistencySampler eager = new ConsistencySampler(m, false)) {
                assertTrue(graphed.usesCudaGraphs());
                for (int steps : new int[] {1, 2, 1}) {
                    float[] want = download(be, eager.sample(in.x(), in.y(), steps, 77));
                    float[] got = download(be, graphed.sample(in.x(), in.y(), steps, 77));
                    assertBitIdentical(want, got, "consistency " + steps + " steps");
                }
                float[] oldPath = download(be, ConsistencySampler.sample(m, in.x(), in.y(), 1, 77));
                float[] eagerOne = download(be, eager.sample(in.x(), in.y(), 1, 77));
                assertBitIdentical(oldPath, eagerOne, "static vs instance, 1 step");
            }
            EulerSampler.Options o = new EulerSampler.Options(3, 1.5f, 0.2f, 1f, 1f, true, false);
            try (EulerSampler graphed = new EulerSampler(m, true); EulerSampler eager = new EulerSampler(m, false)) {
                assertBitIdentical(download(be, eager.sample(in.x(), in.y(), o)),
                        download(be, graphed.sample(in.x(), in.y(), o)), "euler-heun 3 steps, cfg 1.5");
            }
        }
    }

    @Test
    void graphReplayTiming() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        CudaBackend be = CudaBackend.on(device);
        ModelConfig c = Presets.get("tiny");
        boolean sync = facm.cuda.Cuda.syncCheck();
        facm.cuda.Cuda.setSyncCheck(false); // time the launches, not the per-launch checks
        try (ModelWeights w = ModelWeights.philox(c, be, 3); Inputs in = inputs(be, c, 4, 3);
             GraphedForward g = new GraphedForward(new LightningDiT(w))) {
            LightningDiT m = new LightningDiT(w);
            int reps = 50;
            double eagerMs = time(be, reps, () -> m.forward(in.x(), in.t(), in.y(), in.r()).close());
            double graphMs = time(be, reps, () -> g.replay(in.x(), in.t(), in.y(), in.r()));
            System.out.printf("[GraphedForwardGpuTest] tiny batch 4 forward: eager %.3f ms, graph replay %.3f ms "
                    + "(%d nodes)%n", eagerMs, graphMs, g.nodeCount(in.x().shape(), false));
            assertEquals(1, g.graphCount(), "replays must not capture again");
            assertTrue(graphMs < 2 * eagerMs, "graph replay " + graphMs + " ms vs eager " + eagerMs + " ms");
        } finally {
            facm.cuda.Cuda.setSyncCheck(sync);
        }
    }

    private static double time(CudaBackend be, int reps, Runnable r) {
        for (int i = 0; i < 5; i++) {
            r.run();
        }
        be.synchronize();
        long t0 = System.nanoTime();
        for (int i = 0; i < reps; i++) {
            r.run();
        }
        be.synchronize();
        return (System.nanoTime() - t0) / 1e6 / reps;
    }

    private static float[] download(CudaBackend be, Tensor t) {
        try (t) {
            return be.download(t);
        }
    }
}
