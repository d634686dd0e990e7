package facm.cuda.blas;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.tensor.ShapeException;
import java.lang.foreign.MemoryLayout;
import org.junit.jupiter.api.Test;

/** CPU-only checks of the GEMM description, its validation, and the pieces of the binding that need no GPU. */
class RowMajorGemmTest {

    @Test
    void batchedFactoryPacksMatricesDensely() {
        RowMajorGemm g = RowMajorGemm.batched(GemmKind.BF16_F32OUT, false, true, 37, 53, 29, 3);
        assertEquals(37L * 29, g.strideA());
        assertEquals(29L * 53, g.strideB());
        assertEquals(37L * 53, g.strideC());
        assertEquals(3 * 37L * 29, g.aElements());
        assertEquals(3 * 29L * 53, g.bElements());
        assertEquals(3 * 37L * 53, g.cElements());
        assertEquals(1f, g.alpha());
        assertEquals(0f, g.beta());
        assertEquals(2.0 * 37 * 53 * 29 * 3, g.flops());
    }

    @Test
    void broadcastOperandSpansOneMatrix() {
        RowMajorGemm g = RowMajorGemm.batched(GemmKind.F32, false, false, 4, 5, 6, 7).withStrides(24, 0, 20);
        assertEquals(6L * 24 + 24, g.aElements());
        assertEquals(30, g.bElements());
        assertEquals(6L * 20 + 20, g.cElements());
    }

    @Test
    void describeNamesKindShapesTransposesAndStrides() {
        RowMajorGemm g = new RowMajorGemm(GemmKind.TF32, true, true, 37, 53, 29, 3, 1073, 0, 1961, 0.5f, 2f);
        String d = g.describe();
        assertTrue(d.contains("TF32"), d);
        assertTrue(d.contains("batch 3"), d);
        assertTrue(d.contains("C[37x53]"), d);
        assertTrue(d.contains("A[29x37]^T"), d);
        assertTrue(d.contains("B[53x29]^T"), d);
        assertTrue(d.contains("A=1073 B=0 C=1961"), d);
    }

    @Test
    void rejectsEmptyDimensions() {
        ShapeException e = assertThrows(ShapeException.class, () -> RowMajorGemm.of(GemmKind.F32, false, false, 0, 5,
                6));
        assertTrue(e.getMessage().contains("m=0"), e.getMessage());
        assertThrows(ShapeException.class, () -> RowMajorGemm.of(GemmKind.F32, false, false, 4, 5, 0));
        assertThrows(ShapeException.class, () -> RowMajorGemm.batched(GemmKind.F32, false, false, 4, 5, 6, 0));
    }

    @Test
    void rejectsNegativeStrides() {
        assertThrows(ShapeException.class,
                () -> new RowMajorGemm(GemmKind.F32, false, false, 4, 5, 6, 2, -1, 30, 20, 1f, 0f));
    }

    @Test
    void rejectsOverlappingOrBroadcastOutputs() {
        ShapeException e = assertThrows(ShapeException.class,
                () -> new RowMajorGemm(GemmKind.F32, false, false, 4, 5, 6, 2, 24, 30, 0, 1f, 0f));
        assertTrue(e.getMessage().contains("strideC=0"), e.getMessage());
        assertThrows(ShapeException.class,
                () -> new RowMajorGemm(GemmKind.F32, false, false, 4, 5, 6, 2, 24, 30, 19, 1f, 0f));
        // With one matrix the output stride is irrelevant.
        new RowMajorGemm(GemmKind.F32, false, false, 4, 5, 6, 1, 0, 0, 0, 1f, 0f);
    }

    @Test
    void rejectsNonFiniteScalarsAndNullKind() {
        RowMajorGemm g = RowMajorGemm.of(GemmKind.F32, false, false, 4, 5, 6);
        assertThrows(IllegalArgumentException.class, () -> g.withScalars(Float.NaN, 0f));
        assertThrows(IllegalArgumentException.class, () -> g.withScalars(1f, Float.POSITIVE_INFINITY));
        assertThrows(IllegalArgumentException.class,
                () -> new RowMajorGemm(null, false, false, 4, 5, 6, 1, 0, 0, 0, 1f, 0f));
    }

    @Test
    void rejectsExtentsThatOverflow() {
        assertThrows(ShapeException.class, () -> new RowMajorGemm(GemmKind.F32, false, false, 4, 5, 6,
                Integer.MAX_VALUE, Long.MAX_VALUE / 2, 30, 20, 1f, 0f));
    }

    @Test
    void kindsMapToTheDocumentedCublasTypes() {
        assertEquals(68, GemmKind.F32.computeType);
        assertEquals(77, GemmKind.TF32.computeType);
        assertEquals(68, GemmKind.BF16_F32OUT.computeType);
        assertEquals(14, GemmKind.BF16_F32OUT.inputDataType);
        assertEquals(0, GemmKind.BF16_F32OUT.outputDataType);
        assertEquals(14, GemmKind.BF16_BF16OUT.outputDataType);
        assertEquals(2, GemmKind.BF16_BF16OUT.outputElementBytes());
        assertEquals(4, GemmKind.TF32.inputElementBytes());
    }

    @Test
    void heuristicResultStructMatchesTheCHeader() {
        assertEquals(96, CublasLtAbi.HEURISTIC_RESULT.byteSize());
        assertEquals(8, CublasLtAbi.HEURISTIC_RESULT.byteAlignment());
        assertEquals(64, CublasLtAbi.HEURISTIC_WORKSPACE_OFFSET);
        assertEquals(72, CublasLtAbi.HEURISTIC_STATE_OFFSET);
        assertEquals(76, CublasLtAbi.HEURISTIC_WAVES_OFFSET);
        assertEquals(CublasLtAbi.ALGO_BYTES, CublasLtAbi.HEURISTIC_RESULT.select(
                MemoryLayout.PathElement.groupElement("algo")).byteSize());
    }

    @Test
    void pointerAlignmentIsCappedAt256() {
        assertEquals(256, MatmulPlan.Key.alignment(0x7f0000001000L));
        assertEquals(256, MatmulPlan.Key.alignment(0x7f0000000100L));
        assertEquals(128, MatmulPlan.Key.alignment(0x7f0000000080L));
        assertEquals(4, MatmulPlan.Key.alignment(0x7f0000000104L));
        assertEquals(2, MatmulPlan.Key.alignment(0x7f0000000102L));
    }

    @Test
    void planKeyIgnoresScalarsButNotAlignment() {
        RowMajorGemm g = RowMajorGemm.batched(GemmKind.F32, false, true, 8, 9, 10, 2);
        MatmulPlan.Key k1 = MatmulPlan.Key.of(g, 0x1000, 0x2000, 0x3000, 1024);
        MatmulPlan.Key k2 = MatmulPlan.Key.of(g.withScalars(0.5f, 1f), 0x5000, 0x6000, 0x7000, 1024);
        assertEquals(k1, k2);
        MatmulPlan.Key misaligned = MatmulPlan.Key.of(g, 0x1004, 0x2000, 0x3000, 1024);
        assertTrue(!k1.equals(misaligned));
    }

    @Test
    void cublasErrorsNameStatusCallAndContext() {
        CublasException e = new CublasException("cublasLtMatmul", 15, "F32 batch 1: C[4x5] = ...");
        assertEquals("cublasLtMatmul failed: CUBLAS_STATUS_NOT_SUPPORTED (15) for F32 batch 1: C[4x5] = ...",
                e.getMessage());
        assertEquals("CUBLAS_STATUS_NOT_SUPPORTED", e.statusName());
        assertEquals(15, e.status());
        assertEquals("CUBLAS_STATUS_INVALID_VALUE", CublasLtAbi.statusName(7));
        assertEquals("CUBLAS_STATUS_EXECUTION_FAILED", CublasLtAbi.statusName(13));
        assertEquals("CUBLAS_STATUS_99", CublasLtAbi.statusName(99));
    }

    @Test
    void recommendedWorkspaceIs32MiB() {
        assertEquals(32L * 1024 * 1024, CublasLt.RECOMMENDED_WORKSPACE_BYTES);
    }
}
