package facm.backend.cuda;

import facm.cuda.Cuda;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.ReduceOp;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CUDA backend's contract apart from numerics: description, shape and dtype errors, ownership, views, close. */
@Tag("gpu")
class CudaBackendTest extends GpuCpuPairTestBase {

    @Test
    void describeNamesDeviceArchitectureMemoryAndCodePath() {
        String d = p.gpu.describe();
        assertTrue(d.matches("cuda:\\d+ .+ \\(sm_\\d+, \\d+\\.\\d GiB, (SASS sm_\\d+|PTX compute_\\d+ \\(JIT by the driver\\))\\)"),
                d);
        assertEquals("cuda:" + p.gpu.cudaDevice().ordinal(), p.gpu.device().toString());
        System.out.println("[CudaBackendTest] " + d);
    }

    @Test
    void shapeAndDtypeErrorsNameTheOpAndTensors() {
        Tensor a = p.upload("a", new float[12], 3, 4).gpu();
        Tensor b = p.upload("b", new float[12], 4, 3).gpu();
        Tensor ints = p.upload("ints", new int[12], 3, 4).gpu();
        ShapeException e = assertThrows(ShapeException.class, () -> p.gpu.unary(UnaryOp.EXP, a, b));
        assertTrue(e.getMessage().contains("unary EXP") && e.getMessage().contains("a f32[3,4]"), e.getMessage());
        e = assertThrows(ShapeException.class, () -> p.gpu.binary(BinaryOp.ADD, a, p.gpu.empty("bias", DType.F32, 3), a));
        assertTrue(e.getMessage().contains("trailing"), e.getMessage());
        assertThrows(ShapeException.class, () -> p.gpu.unary(UnaryOp.EXP, ints, ints));
        assertThrows(ShapeException.class, () -> p.gpu.fill(ints, 1f));
        assertThrows(ShapeException.class, () -> p.gpu.axpby(1f, a, 1f, b, a));
        e = assertThrows(ShapeException.class, () -> p.gpu.reduce(ReduceOp.SUM, a, 1, b));
        assertTrue(e.getMessage().contains("reduce SUM axis 1"), e.getMessage());
        assertThrows(ShapeException.class, () -> p.gpu.reduce(ReduceOp.SUM, a, 2, p.gpu.empty(DType.F32, 3)));
        Tensor row = p.upload("row", new float[4], 1, 4).gpu();
        e = assertThrows(ShapeException.class, () -> p.gpu.reduce(ReduceOp.SUM, row, 0, row.reshape(4)));
        assertTrue(e.getMessage().contains("share storage"), e.getMessage());
        assertThrows(ShapeException.class, () -> p.gpu.softmax(p.gpu.empty(DType.F32), p.gpu.empty(DType.F32)));
        e = assertThrows(ShapeException.class,
                () -> p.gpu.gemm(a, false, a, false, p.gpu.empty(DType.F32, 3, 4), 1f, 0f, GemmPrecision.FP32));
        assertTrue(e.getMessage().contains("inner dimensions differ"), e.getMessage());
        assertThrows(ShapeException.class,
                () -> p.gpu.gemm(a, false, b, false, p.gpu.empty(DType.F32, 3, 3), 1f, 0f, GemmPrecision.BF16));
        Tensor h = p.gpu.empty("h", DType.BF16, 3, 4);
        e = assertThrows(ShapeException.class, () -> p.gpu.convert(h, ints));
        assertTrue(e.getMessage().contains("not supported"), e.getMessage());
        assertThrows(ShapeException.class, () -> p.gpu.upload("short", new float[5], 2, 3));
        assertThrows(ShapeException.class, () -> p.gpu.download(ints));
        assertThrows(ShapeException.class, () -> p.gpu.downloadInts(a));
    }

    @Test
    void tensorsOfAnotherBackendAreRejected() {
        Tensor cpuTensor = p.upload("x", new float[4], 4).cpu();
        Tensor gpuTensor = p.upload("x", new float[4], 4).gpu();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> p.gpu.unary(UnaryOp.NEG, cpuTensor, gpuTensor));
        assertTrue(e.getMessage().contains("belongs to cpu"), e.getMessage());
    }

    @Test
    void viewsShareStorageAndDieWithTheirOwner() {
        float[] v = {1, 2, 3, 4, 5, 6};
        Tensor owner = p.gpu.upload("w", v, 2, 3);
        Tensor view = owner.reshape(3, 2);
        assertArrayEquals(v, p.gpu.download(view));
        p.gpu.fill(view, 7f);
        assertArrayEquals(new float[] {7, 7, 7, 7, 7, 7}, p.gpu.download(owner));
        view.close(); // a view frees nothing
        assertFalse(owner.isClosed());
        assertArrayEquals(new float[] {7, 7, 7, 7, 7, 7}, p.gpu.download(owner));
        Tensor view2 = owner.reshape(6);
        owner.close();
        owner.close(); // idempotent
        assertTrue(view2.isClosed());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> p.gpu.download(view2));
        assertTrue(e.getMessage().contains("after close"), e.getMessage());
    }

    @Test
    void aClosedBackendRefusesWork() {
        CudaBackend other = CudaBackend.on(p.gpu.cudaDevice());
        Tensor t = other.upload("t", new float[] {1f}, 1);
        t.close();
        other.close();
        other.close();
        assertThrows(IllegalStateException.class, () -> other.empty(DType.F32, 1));
        // The shared device is still usable by the fixture's backend.
        assertArrayEquals(new float[] {2f}, p.gpu.download(p.upload("u", new float[] {2f}, 1).gpu()));
    }

    @Test
    void emptyLaunchLatency() {
        // Not an assertion on speed (hosts differ): prints the cost of one launch from Java for the records.
        boolean was = Cuda.syncCheck();
        Cuda.setSyncCheck(false);
        try {
            for (int i = 0; i < 1000; i++) {
                p.gpu.launchNoop();
            }
            p.gpu.synchronize();
            int launches = 20_000;
            long t0 = System.nanoTime();
            for (int i = 0; i < launches; i++) {
                p.gpu.launchNoop();
            }
            p.gpu.synchronize();
            double us = (System.nanoTime() - t0) / 1e3 / launches;
            System.out.printf(java.util.Locale.ROOT, "[CudaBackendTest] noop launch: %.2f us each (%d launches)%n",
                    us, launches);
        } finally {
            Cuda.setSyncCheck(was);
        }
    }
}
