package facm.cuda;

import facm.backend.cuda.CudaBackend;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The kernel profile on the GPU: kernel launches and cuBLASLt products are timed under their labels while it is on,
 * not while it is off, and never inside a CUDA graph capture (where the capture stays valid and replays correctly).
 */
@Tag("gpu")
class KernelProfileGpuTest {

    @AfterEach
    void profileOff() {
        KernelProfile.disable();
        KernelProfile.releaseEvents();
    }

    private static float[] ramp(int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = scale * (i % 13 - 6) + 0.5f;
        }
        return v;
    }

    private static KernelTimeTable.Row row(KernelTimeTable t, String label) {
        List<KernelTimeTable.Row> rows = t.rows();
        for (KernelTimeTable.Row r : rows) {
            if (r.label().equals(label)) {
                return r;
            }
        }
        throw new AssertionError("no row '" + label + "' in " + rows);
    }

    @Test
    void timesKernelsAndGemmsUnderTheirLabels() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        CudaBackend be = CudaBackend.on(device);
        try (Tensor a = be.upload("a", ramp(64 * 32, 0.25f), 64, 32);
             Tensor b = be.upload("b", ramp(48 * 32, -0.5f), 48, 32);
             Tensor c = be.empty("c", DType.F32, 64, 48);
             Tensor scaled = be.empty("scaled", DType.F32, 64, 32)) {
            // Kernels loaded and the cuBLASLt plan made before the profile starts.
            be.affine(a, 2f, 1f, scaled);
            be.gemm(a, false, b, true, c, 1f, 0f, GemmPrecision.FP32);
            be.synchronize();
            KernelProfile.reset();
            KernelProfile.enable();
            for (int i = 0; i < 3; i++) {
                be.affine(a, 2f, 1f, scaled);
            }
            for (int i = 0; i < 2; i++) {
                be.gemm(a, false, b, true, c, 1f, 0f, GemmPrecision.FP32);
            }
            KernelProfile.disable();
            be.affine(a, 3f, 0f, scaled); // off: not timed

            KernelTimeTable t = KernelProfile.snapshot();
            assertEquals(5, t.launches(), KernelProfile.report(10));
            KernelTimeTable.Row affine = row(t, "affine_f32");
            assertEquals(3, affine.calls());
            assertTrue(affine.totalMs() > 0, "affine " + affine);
            KernelTimeTable.Row gemm = row(t, "gemm 64x48x32 f32->f32 NT");
            assertEquals(2, gemm.calls());
            assertTrue(gemm.totalMs() > 0, "gemm " + gemm);
            assertTrue(t.sumMs() > 0 && t.wallMs() > 0, "sum " + t.sumMs() + " wall " + t.wallMs());
            String report = KernelProfile.report(10);
            assertTrue(report.contains("affine_f32") && report.contains("gemm 64x48x32 f32->f32 NT")
                    && report.contains("wall from first to last event on cuda:"), report);

            // A reset forgets the records and keeps the pool: the next launch is timed alone.
            KernelProfile.reset();
            KernelProfile.enable();
            be.affine(a, 2f, 1f, scaled);
            assertEquals(1, KernelProfile.snapshot().launches());
            KernelProfile.reserve(64); // pooled ahead on this device; records stay as they were
            assertEquals(1, KernelProfile.recorded());
            be.affine(a, 2f, 1f, scaled);
            assertEquals(2, KernelProfile.snapshot().rows().get(0).calls());
        }
    }

    @Test
    void launchesInsideACaptureAreNotTimedAndTheGraphStillWorks() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        CudaBackend be = CudaBackend.on(device);
        int n = 512;
        try (Tensor a = be.upload("a", ramp(n, 1f), n); Tensor b = be.upload("b", ramp(n, -0.5f), n)) {
            DeviceArena arena = device.arena();
            GraphMemoryPool pool = arena.newPool("profiled-capture");
            KernelProfile.enable();
            try (DeviceArena.PoolScope s = arena.usePool(pool)) {
                region(be, a, b).close(); // warm-up, timed: affine + mul
            }
            assertEquals(2, KernelProfile.snapshot().launches());
            KernelProfile.reset();
            Tensor[] out = new Tensor[1];
            try (CudaGraph g = CudaGraph.capture("profiled-capture", device.stream(), pool,
                    () -> out[0] = region(be, a, b))) {
                g.launch();
                KernelTimeTable t = KernelProfile.snapshot();
                assertEquals(0, t.launches(), t.format(5, 1));
                assertEquals(2, t.skippedInCapture(), t.format(5, 1));
                assertNotNull(out[0]);
                float[] got = be.download(out[0]);
                float[] av = ramp(n, 1f);
                float[] bv = ramp(n, -0.5f);
                for (int i = 0; i < n; i += 37) {
                    assertEquals((2 * av[i] + 1) * bv[i], got[i], 1e-5f * Math.abs((2 * av[i] + 1) * bv[i]) + 1e-6f,
                            "element " + i);
                }
            }
            out[0].close();
        }
    }

    /** tmp = 2a + 1; out = tmp · b: two kernel launches. */
    private static Tensor region(CudaBackend be, Tensor a, Tensor b) {
        try (Tensor tmp = be.empty("tmp", DType.F32, a.shape())) {
            be.affine(a, 2f, 1f, tmp);
            Tensor out = be.empty("out", DType.F32, a.shape());
            be.binary(BinaryOp.MUL, tmp, b, out);
            return out;
        }
    }
}
