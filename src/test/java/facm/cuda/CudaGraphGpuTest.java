package facm.cuda;

import facm.backend.cuda.CudaBackend;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Capture and replay of backend ops on the GPU: a replay computes what the eager ops compute, sees new contents of
 * its static inputs, keeps its memory in its pool until closed, and what cannot be captured fails with a clear
 * "not capturable" error that leaves the stream usable.
 */
@Tag("gpu")
class CudaGraphGpuTest {

    private static float[] ramp(int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = scale * (i % 17 - 8) + 0.25f;
        }
        return v;
    }

    @Test
    void replayComputesTheEagerResultAndSeesNewInputs() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        CudaBackend be = CudaBackend.on(device);
        int n = 1000;
        try (Tensor a = be.upload("a", ramp(n, 1f), n); Tensor b = be.upload("b", ramp(n, -0.5f), n)) {
            float[] want = eager(be, a, b);
            Tensor[] out = new Tensor[1];
            DeviceArena arena = device.arena();
            GraphMemoryPool pool = arena.newPool("affine-mul");
            try (DeviceArena.PoolScope s = arena.usePool(pool)) {
                region(be, a, b).close(); // warm-up: the capture then finds its blocks in the pool
            }
            try (CudaGraph g = CudaGraph.capture("affine-mul", device.stream(), pool, () -> out[0] = region(be, a, b))) {
                assertTrue(g.nodeCount() >= 2, "nodes: " + g.nodeCount());
                assertTrue(arena.stats().poolBytes() > 0);
                g.launch();
                assertArrayEquals(want, be.download(out[0]));
                try (Tensor a2 = be.upload("a2", ramp(n, 3f), n)) {
                    be.copy(a2, a);
                }
                g.launch();
                assertArrayEquals(eager(be, a, b), be.download(out[0]));
                assertEquals(2, g.launches());
            }
            assertTrue(pool.isReleased());
            assertEquals(0, arena.stats().poolBytes(), arena.report());
            out[0].close();
        }
    }

    /** tmp = 2a + 1; out = tmp · b (a temporary freed inside the region, and an output that outlives it). */
    private static Tensor region(CudaBackend be, Tensor a, Tensor b) {
        try (Tensor tmp = be.empty("tmp", DType.F32, a.shape())) {
            be.affine(a, 2f, 1f, tmp);
            Tensor out = be.empty("out", DType.F32, a.shape());
            be.binary(BinaryOp.MUL, tmp, b, out);
            return out;
        }
    }

    private static float[] eager(CudaBackend be, Tensor a, Tensor b) {
        try (Tensor o = region(be, a, b)) {
            return be.download(o);
        }
    }

    @Test
    void downloadInsideACaptureIsNotCapturableAndTheStreamRecovers() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        CudaBackend be = CudaBackend.on(device);
        try (Tensor a = be.upload("a", ramp(64, 1f), 64)) {
            GraphMemoryPool pool = device.arena().newPool("bad");
            CudaException e = assertThrows(CudaException.class, () -> CudaGraph.capture("bad", device.stream(), pool,
                    () -> be.download(a)));
            assertTrue(e.getMessage().startsWith("not capturable:"), e.getMessage());
            assertTrue(pool.isReleased());
            assertTrue(!CudaGraph.capturing());
            GraphMemoryPool pool2 = device.arena().newPool("sync");
            CudaException s = assertThrows(CudaException.class, () -> CudaGraph.capture("sync", device.stream(), pool2,
                    device.stream()::synchronize));
            assertTrue(s.getMessage().startsWith("not capturable: cuStreamSynchronize"), s.getMessage());
            try (Tensor b = be.empty("b", DType.F32, 64)) {
                be.affine(a, 1f, 1f, b);
                float[] got = be.download(b);
                assertEquals(ramp(64, 1f)[5] + 1f, got[5]);
            }
        }
    }
}
