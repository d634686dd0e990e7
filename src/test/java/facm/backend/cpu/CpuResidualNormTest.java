package facm.backend.cpu;

import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** gatedResidualRmsNormModulate on the CPU: bit-identical to gatedResidual then rmsNormModulate (its definition). */
class CpuResidualNormTest {
    private static float[] random(long seed, int n, float lo, float hi) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = lo + (hi - lo) * r.nextFloat();
        }
        return v;
    }

    @ParameterizedTest(name = "B{0} T{1} D{2} a {3} out {4} mod2 {5}")
    @CsvSource({"1, 7, 40, F32, F32, true", "2, 3, 38, BF16, BF16, true", "2, 16, 96, BF16, F32, false",
            "1, 5, 64, F32, BF16, true"})
    void fusedEqualsSequence(int b, int t, int d, DType aType, DType outType, boolean withMod2) {
        CpuBackend be = new CpuBackend();
        NetworkOps net = be.network();
        int n = b * t * d;
        float[] h0 = random(1, n, -2f, 2f);
        try (Tensor hFused = be.upload("h", h0, b, t, d); Tensor hSeq = be.upload("hSeq", h0, b, t, d);
             Tensor a32 = be.upload("a", random(2, n, -2f, 2f), b, t, d);
             Tensor a = be.empty("a", aType, b, t, d);
             Tensor mod = be.upload("mod", random(3, b * 6 * d, -1f, 1f), b, 6 * d);
             Tensor w = be.upload("w", random(4, d, 0.5f, 1.5f), d);
             Tensor mod2 = be.upload("mod2", random(5, b * 2 * d, -0.5f, 0.5f), b, 2 * d);
             Tensor out = be.empty("out", outType, b, t, d); Tensor outSeq = be.empty("outSeq", outType, b, t, d);
             Tensor rstd = be.empty("rstd", DType.F32, b * t); Tensor rstdSeq = be.empty("rstdSeq", DType.F32, b * t)) {
            be.convert(a32, a);
            Tensor m2 = withMod2 ? mod2 : null;
            net.gatedResidualRmsNormModulate(hFused, a, mod, 2, w, 1e-6f, m2, 0, 1, out, rstd);
            net.gatedResidual(hSeq, a, mod, 2);
            net.rmsNormModulate(hSeq, w, 1e-6f, m2, 0, 1, outSeq, rstdSeq);
            assertArrayEquals(be.download(hSeq), be.download(hFused), "h");
            assertArrayEquals(be.download(outSeq), be.download(out), "out");
            assertArrayEquals(be.download(rstdSeq), be.download(rstd), "rstd");
        }
    }
}
