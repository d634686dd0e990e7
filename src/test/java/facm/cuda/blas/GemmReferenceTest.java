package facm.cuda.blas;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The GPU test trusts {@link GemmReference}; these CPU checks make sure its indexing of transposes, strides and
 * offsets is right, so that a GPU failure points at the binding and not at the reference.
 */
class GemmReferenceTest {

    /** A 2x2 product worked by hand: [[1,2],[3,4]] · [[5,6],[7,8]] = [[19,22],[43,50]]. */
    @Test
    void smallProductByHand() {
        RowMajorGemm g = RowMajorGemm.of(GemmKind.F32, false, false, 2, 2, 2);
        float[] a = {1, 2, 3, 4};
        float[] b = {5, 6, 7, 8};
        float[] c0 = new float[4];
        Arrays.fill(c0, Float.NaN);
        assertNull(GemmReference.check(g, a, b, c0, new float[] {19, 22, 43, 50}, 0));
        assertNotNull(GemmReference.check(g, a, b, c0, new float[] {19, 22, 43, 51}, 0));
        assertNotNull(GemmReference.check(g, a, b, c0, new float[] {19, 22, 43, Float.NaN}, 0));
    }

    @Test
    void transposedOperandsAreReadTransposed() {
        // Same product with A and B stored transposed: Aᵀ stored = [[1,3],[2,4]], Bᵀ stored = [[5,7],[6,8]].
        RowMajorGemm g = RowMajorGemm.of(GemmKind.F32, true, true, 2, 2, 2);
        float[] c0 = new float[4];
        assertNull(GemmReference.check(g, new float[] {1, 3, 2, 4}, new float[] {5, 7, 6, 8}, c0,
                new float[] {19, 22, 43, 50}, 0));
    }

    @Test
    void rectangularTransposeMatchesExplicitTranspose() {
        Random random = new Random(7);
        int m = 3;
        int n = 5;
        int k = 4;
        float[] a = GemmReference.randomValues((long) m * k, false, random);
        float[] aT = new float[a.length];
        for (int r = 0; r < m; r++) {
            for (int p = 0; p < k; p++) {
                aT[p * m + r] = a[r * k + p];
            }
        }
        RowMajorGemm plain = RowMajorGemm.of(GemmKind.F32, false, false, m, n, k);
        RowMajorGemm transposed = RowMajorGemm.of(GemmKind.F32, true, false, m, n, k);
        float[] b = GemmReference.randomValues((long) k * n, false, random);
        for (int r = 0; r < m; r++) {
            for (int p = 0; p < k; p++) {
                assertEquals(GemmReference.opA(plain, a, 0, 0, r, p), GemmReference.opA(transposed, aT, 0, 0, r, p));
            }
        }
        assertEquals(GemmReference.opB(plain, b, 0, 0, 2, 4), b[2 * n + 4]);
    }

    @Test
    void betaAccumulatesBroadcastAndOffsetsAreHonoured() {
        // batch 2, B broadcast (stride 0), C with a 1-element gap between matrices, everything offset by 1.
        RowMajorGemm g = new RowMajorGemm(GemmKind.F32, false, false, 1, 1, 2, 2, 2, 0, 2, 2f, 0.5f);
        float[] a = {99, 1, 2, 3, 4};
        float[] b = {99, 10, 100};
        float[] c0 = {99, 8, -7, 6};
        // C[0] = 2*(1*10 + 2*100) + 0.5*8 = 424; C[1] = 2*(3*10 + 4*100) + 0.5*6 = 863; gap (index 2) untouched.
        assertNull(GemmReference.check(g, a, b, c0, new float[] {99, 424, -7, 863}, 1));
        String changedGap = GemmReference.check(g, a, b, c0, new float[] {99, 424, 0, 863}, 1);
        assertNotNull(changedGap);
        assertTrue(changedGap.contains("outside every output matrix"), changedGap);
    }
}
