package facm.cuda.blas;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.cuda.Cuda;
import facm.cuda.CudaDevice;
import facm.cuda.CudaTestSupport;
import facm.cuda.DeviceBuffer;
import facm.tensor.Bf16;
import java.util.Arrays;
import java.util.Random;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * cuBLASLt GEMMs against the float64 host product ({@link GemmReference}) on random non-zero data and odd shapes, for
 * every {@link GemmKind}. C starts poisoned with NaN when beta is 0 (it must not be read) and random otherwise.
 */
@Tag("gpu")
class CublasLtGemmTest {
    private static CudaDevice device;
    private static CublasLt lt;
    private static DeviceBuffer workspace;

    /** Per test, so that without a GPU every test is reported as skipped with the reason. */
    @BeforeEach
    void openHandleOnce() {
        CudaDevice d = CudaTestSupport.device();
        if (lt != null) {
            return;
        }
        device = d;
        lt = CublasLt.open();
        workspace = device.arena().allocate(CublasLt.RECOMMENDED_WORKSPACE_BYTES, "cuBLASLt workspace");
        System.out.println("[CublasLtGemmTest] " + lt + " on " + device + " (sm_" + device.computeCapability() + ")");
    }

    @AfterAll
    static void closeHandle() {
        if (device == null) {
            return;
        }
        device.synchronize();
        if (workspace != null) {
            workspace.close();
        }
        if (lt != null) {
            lt.close();
        }
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void batchedPlain(GemmKind kind) {
        runAndCheck(RowMajorGemm.batched(kind, false, false, 37, 53, 29, 3), 0);
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void batchedTransposedA(GemmKind kind) {
        runAndCheck(RowMajorGemm.batched(kind, true, false, 37, 53, 29, 3), 0);
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void batchedTransposedB(GemmKind kind) {
        runAndCheck(RowMajorGemm.batched(kind, false, true, 37, 53, 29, 3), 0);
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void singleBothTransposedWithAlpha(GemmKind kind) {
        runAndCheck(RowMajorGemm.of(kind, true, true, 37, 53, 29).withScalars(0.75f, 0f), 0);
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void broadcastBWithBetaAccumulate(GemmKind kind) {
        // A shared weight (stride 0) applied to each batch entry, accumulated into C: the linear-layer backward shape.
        runAndCheck(RowMajorGemm.batched(kind, false, true, 37, 53, 29, 3).withStrides(37L * 29, 0, 37L * 53)
                .withScalars(1f, 0.5f), 0);
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void broadcastAWithNegativeBeta(GemmKind kind) {
        runAndCheck(RowMajorGemm.batched(kind, true, false, 37, 53, 29, 2).withStrides(0, 29L * 53, 37L * 53)
                .withScalars(-1.5f, -1.25f), 0);
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void gapsBetweenOutputsStayUntouched(GemmKind kind) {
        runAndCheck(RowMajorGemm.batched(kind, false, false, 37, 53, 29, 2).withStrides(37L * 29 + 3, 29L * 53 + 5,
                37L * 53 + 7), 0);
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void pointersOffsetByOneElement(GemmKind kind) {
        // Views into the middle of a buffer: the heuristic must be told the real (small) pointer alignment.
        runAndCheck(RowMajorGemm.batched(kind, false, true, 40, 48, 64, 2).withScalars(1f, 1f), 1);
    }

    @ParameterizedTest
    @EnumSource(GemmKind.class)
    void tensorCoreSizedProduct(GemmKind kind) {
        runAndCheck(RowMajorGemm.batched(kind, false, true, 192, 256, 320, 2), 0);
    }

    @Test
    void repeatedShapeReusesItsPlan() {
        RowMajorGemm g = RowMajorGemm.batched(GemmKind.BF16_F32OUT, false, false, 33, 35, 31, 2);
        int before = lt.planCount();
        runAndCheck(g, 0);
        assertEquals(before + 1, lt.planCount());
        runAndCheck(g.withScalars(2f, 1f), 0);
        runAndCheck(g, 0);
        assertEquals(before + 1, lt.planCount(), "alpha/beta must not create new plans");
    }

    @Test
    void badOperandsAreRejectedBeforeCallingCublas() {
        RowMajorGemm g = RowMajorGemm.of(GemmKind.F32, false, false, 4, 4, 4);
        long stream = device.stream().address();
        IllegalArgumentException nullA = assertThrows(IllegalArgumentException.class,
                () -> lt.gemm(stream, g, 0, workspace.address(), workspace.address(), 0, 0));
        assertTrue(nullA.getMessage().contains("operand A is a null device pointer"), nullA.getMessage());
        IllegalArgumentException misaligned = assertThrows(IllegalArgumentException.class,
                () -> lt.gemm(stream, g, workspace.address() + 2, workspace.address(), workspace.address(), 0, 0));
        assertTrue(misaligned.getMessage().contains("not aligned"), misaligned.getMessage());
    }

    /**
     * Uploads random operands (offset by {@code offsetElements} from 256-byte aligned allocations), runs the GEMM on
     * the device's stream and compares with the host reference.
     */
    private static void runAndCheck(RowMajorGemm g, int offsetElements) {
        GemmKind kind = g.kind();
        boolean bf16In = kind.inputElementBytes() == 2;
        boolean bf16Out = kind.outputElementBytes() == 2;
        Random random = new Random(g.describe().hashCode());
        float[] a = GemmReference.randomValues(g.aElements() + offsetElements, bf16In, random);
        float[] b = GemmReference.randomValues(g.bElements() + offsetElements, bf16In, random);
        float[] c0 = GemmReference.randomValues(g.cElements() + offsetElements, bf16Out, random);
        if (g.beta() == 0) {
            Arrays.fill(c0, Float.NaN);
        }
        device.makeCurrent();
        try (DeviceBuffer da = upload(a, bf16In, "A");
             DeviceBuffer db = upload(b, bf16In, "B");
             DeviceBuffer dc = upload(c0, bf16Out, "C")) {
            device.synchronize(); // pageable uploads may still be in flight on the legacy stream
            long inOffset = (long) offsetElements * kind.inputElementBytes();
            long outOffset = (long) offsetElements * kind.outputElementBytes();
            lt.gemm(device.stream().address(), g, da.address() + inOffset, db.address() + inOffset,
                    dc.address() + outOffset, workspace.address(), workspace.bytes());
            device.stream().synchronize();
            float[] got = download(dc, c0.length, bf16Out);
            assertNull(GemmReference.check(g, a, b, c0, got, offsetElements));
        }
    }

    private static DeviceBuffer upload(float[] values, boolean bf16, String what) {
        long bytes = (long) values.length * (bf16 ? 2 : 4);
        DeviceBuffer buffer = device.arena().allocate(bytes, "gemm test " + what);
        Pointer host;
        if (bf16) {
            short[] bits = new short[values.length];
            for (int i = 0; i < values.length; i++) {
                bits[i] = Bf16.fromFloat(values[i]);
            }
            host = Pointer.to(bits);
        } else {
            host = Pointer.to(values);
        }
        Cuda.check(JCudaDriver.cuMemcpyHtoD(buffer.ptr(), host, bytes), "cuMemcpyHtoD(gemm test " + what + ")");
        return buffer;
    }

    private static float[] download(DeviceBuffer buffer, int count, boolean bf16) {
        float[] values = new float[count];
        if (bf16) {
            short[] bits = new short[count];
            Cuda.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(bits), buffer.ptr(), count * 2L), "cuMemcpyDtoH(C)");
            for (int i = 0; i < count; i++) {
                values[i] = Bf16.toFloat(bits[i]);
            }
        } else {
            Cuda.check(JCudaDriver.cuMemcpyDtoH(Pointer.to(values), buffer.ptr(), count * 4L), "cuMemcpyDtoH(C)");
        }
        return values;
    }
}
