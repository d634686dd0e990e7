package facm.cuda.blas;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

/** The GEMM labels of the kernel profile: shape, dtypes, transposes, epilogue; cached per product. */
class GemmProfileLabelTest {

    @Test
    void labelsSayShapeDtypesTransposesAndEpilogue() {
        RowMajorGemm linear = RowMajorGemm.of(GemmKind.BF16_BF16OUT, false, true, 8192, 3456, 1152);
        assertEquals("gemm 8192x3456x1152 bf16->bf16 NT", GemmProfileLabel.of(linear, false));
        assertEquals("gemm 8192x3456x1152 bf16->bf16 NT bias", GemmProfileLabel.of(linear, true));
        RowMajorGemm weightGrad = RowMajorGemm.of(GemmKind.BF16_F32OUT, true, false, 3456, 1152, 8192)
                .withScalars(1f, 1f);
        assertEquals("gemm 3456x1152x8192 bf16->f32 TN +C", GemmProfileLabel.of(weightGrad, false));
        RowMajorGemm batched = RowMajorGemm.batched(GemmKind.TF32, false, false, 256, 72, 256, 16);
        assertEquals("gemm 16x[256x72x256] f32->f32 tf32 NN", GemmProfileLabel.of(batched, false));
    }

    @Test
    void aRepeatedProductReusesItsLabel() {
        RowMajorGemm g = RowMajorGemm.of(GemmKind.F32, false, false, 3, 5, 7);
        assertSame(GemmProfileLabel.of(g, false), GemmProfileLabel.of(RowMajorGemm.of(GemmKind.F32, false, false, 3, 5,
                7), false));
    }
}
