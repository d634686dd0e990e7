package facm.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.tensor.DType;
import facm.tensor.Device;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

class CpuTensorTest {
    private static final CpuBackend CPU = new CpuBackend(2);

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    @Test
    void emptyIsZeroFilledWithTheRightStorage() {
        CpuTensor f = CPU.empty("f", DType.F32, 2, 3);
        CpuTensor h = CPU.empty("h", DType.BF16, 4);
        CpuTensor i = CPU.empty("i", DType.I32, 5, 1);
        assertArrayEquals(new float[6], f.f32());
        assertArrayEquals(new short[4], h.bf16());
        assertArrayEquals(new int[5], i.i32());
        assertEquals(6, f.size());
        assertEquals(24, f.bytes());
        assertEquals(Device.CPU, f.device());
        assertSame(CPU, f.backend());
        assertEquals("f f32[2,3] cpu", f.describe());
    }

    @Test
    void rankZeroTensorHoldsOneElement() {
        CpuTensor s = CPU.upload("s", new float[] {4f});
        assertEquals(0, s.rank());
        assertArrayEquals(new float[] {2f}, CPU.download(CPU.unary(UnaryOp.SQRT, s)));
    }

    @Test
    void uploadAndDownloadCopy() {
        float[] data = {1, 2, 3, 4, 5, 6};
        Tensor t = CPU.upload("x", data, 2, 3);
        data[0] = 99;
        float[] back = CPU.download(t);
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, back);
        back[1] = 99;
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, CPU.download(t));

        Tensor ints = CPU.upload("n", new int[] {7, -8}, 2);
        assertArrayEquals(new int[] {7, -8}, CPU.downloadInts(ints));
        Tensor bits = CPU.uploadBf16("b", new short[] {0x3F80, (short) 0xC000}, 2);
        assertArrayEquals(new short[] {0x3F80, (short) 0xC000}, CPU.downloadBf16(bits));
        assertArrayEquals(new float[] {1f, -2f}, CPU.download(bits));
    }

    @Test
    void uploadWithWrongLengthNamesTheTensor() {
        ShapeException e = assertThrows(ShapeException.class, () -> CPU.upload("weights", new float[5], 2, 3));
        assertTrue(e.getMessage().contains("weights") && e.getMessage().contains("[2,3]"), e.getMessage());
    }

    @Test
    void downloadChecksDType() {
        Tensor ints = CPU.upload("n", new int[] {1}, 1);
        ShapeException e = assertThrows(ShapeException.class, () -> CPU.download(ints));
        assertTrue(e.getMessage().contains("n i32[1] cpu"), e.getMessage());
        assertThrows(ShapeException.class, () -> CPU.downloadBf16(CPU.empty(DType.F32, 1)));
        assertThrows(ShapeException.class, () -> CPU.downloadInts(CPU.empty(DType.F32, 1)));
    }

    @Test
    void accessorsCheckDType() {
        CpuTensor t = CPU.empty("w", DType.BF16, 3);
        ShapeException e = assertThrows(ShapeException.class, t::f32);
        assertTrue(e.getMessage().contains("w bf16[3] cpu"), e.getMessage());
        assertThrows(ShapeException.class, t::i32);
    }

    @Test
    void viewsShareStorageAndDieWithTheOwner() {
        CpuTensor owner = CPU.upload("x", new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        CpuTensor view = (CpuTensor) owner.reshape(3, 2);
        assertTrue(view.sharesStorageWith(owner));
        assertFalse(view.isOwner());
        assertSame(owner.f32(), view.f32());
        assertEquals("x f32[3,2] cpu", view.describe());

        view.close(); // a view's close frees nothing
        assertFalse(owner.isClosed());
        CPU.fill(view, 7f);
        assertArrayEquals(new float[] {7, 7, 7, 7, 7, 7}, CPU.download(owner));

        owner.close();
        assertTrue(owner.isClosed());
        assertTrue(view.isClosed());
        owner.close(); // idempotent
        assertThrows(IllegalStateException.class, owner::f32);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> CPU.download(view));
        assertTrue(e.getMessage().contains("x f32[3,2] cpu"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> CPU.unary(UnaryOp.NEG, owner));
        assertThrows(IllegalStateException.class, () -> owner.reshape(6));
    }

    @Test
    void reshapeChecksElementCount() {
        Tensor t = CPU.empty(DType.F32, 2, 3);
        assertThrows(ShapeException.class, () -> t.reshape(4, 2));
    }

    @Test
    void tensorsOfAnotherBackendAreRejected() {
        try (CpuBackend other = new CpuBackend(1)) {
            Tensor foreign = other.empty("y", DType.F32, 2);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> CPU.unary(UnaryOp.NEG, foreign, CPU.empty(DType.F32, 2)));
            assertTrue(e.getMessage().contains("y f32[2] cpu") && e.getMessage().contains("another"),
                    e.getMessage());
        }
    }

    @Test
    void closedBackendRefusesWork() {
        CpuBackend b = new CpuBackend(2);
        Tensor t = b.empty(DType.F32, 3);
        b.close();
        b.close();
        assertThrows(IllegalStateException.class, () -> b.empty(DType.F32, 1));
        assertThrows(IllegalStateException.class, () -> b.fill(t, 1f));
    }

    @Test
    void describeNamesThreadsAndJava() {
        try (CpuBackend b = new CpuBackend(3)) {
            assertEquals("cpu (3 threads, Java " + Runtime.version() + ")", b.describe());
            assertEquals(Device.CPU, b.device());
        }
        assertThrows(IllegalArgumentException.class, () -> new CpuBackend(0));
    }

    @Test
    void copyAndFill() {
        Tensor src = CPU.upload("s", new float[] {1, 2, 3, 4}, 2, 2);
        Tensor dst = CPU.empty("d", DType.F32, 4);
        CPU.copy(src, dst);
        assertArrayEquals(new float[] {1, 2, 3, 4}, CPU.download(dst));
        assertThrows(ShapeException.class, () -> CPU.copy(src, CPU.empty(DType.F32, 5)));
        assertThrows(ShapeException.class, () -> CPU.copy(src, CPU.empty(DType.BF16, 4)));

        Tensor h = CPU.empty(DType.BF16, 3);
        CPU.fill(h, 1.00390625f); // halfway between bf16 1.0 and 1.0078125: ties to even gives 1.0
        assertArrayEquals(new float[] {1f, 1f, 1f}, CPU.download(h));
        assertThrows(ShapeException.class, () -> CPU.fill(CPU.empty(DType.I32, 2), 1f));
        Tensor z = CPU.zeros(DType.F32, 2);
        assertArrayEquals(new float[2], CPU.download(z));
    }
}
