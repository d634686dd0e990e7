package facm.backend.cuda;

import facm.backend.cpu.CpuNetworkOps;
import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertUlps;
import static facm.backend.cuda.GpuCpuPair.assertWithin;
import static facm.backend.cuda.GpuCpuPair.bf16Values;
import static facm.backend.cuda.GpuCpuPair.values;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * gatedResidualRmsNormModulate (kernels/residual_norm.cu, CudaResidualNorm): the fused kernel against the two GPU ops
 * in sequence (bit-identical: same operations in the same order), and against the CPU reference (the same sequence in
 * fp64 inside). Shapes: odd (rows 7, D 40), D % 4 != 0 and D > 2048 (the launcher's two-op path), XL/1 (B2·T256,
 * D 1152); a f32 or bf16, out f32 or bf16, mod2 with 2 chunks (as the final layer's) or none. Outputs poisoned.
 *
 * <p>Tolerances against the CPU: h is one fma on exactly widened values (1 ulp, 1e-6 floor, as gatedResidual's gpu
 * test); a bf16 out one bf16 step (2^-7 of the value + 1e-4, as CudaBf16ActivationsTest); an f32 out 1e-5 of the
 * magnitude of its terms |n·w·(1+scale)| + |shift| ≤ |out| + 2|shift| (as CudaNetworkLayersTest) + 1e-6; rstd rel 1e-5.
 */
@Tag("gpu")
class CudaResidualNormTest extends GpuCpuPairTestBase {
    private static final float EPS = 1e-6f;

    private NetworkOps gpu;
    private NetworkOps cpu;

    @Override
    void opened() {
        gpu = new CudaNetworkOps(p.gpu);
        cpu = new CpuNetworkOps(p.cpu);
    }

    @ParameterizedTest(name = "B{0} T{1} D{2} a {3} out {4} mod2 {5}")
    @CsvSource({"1, 7, 40, F32, F32, true", "1, 7, 40, F32, BF16, true", "2, 3, 38, BF16, BF16, true",
            "2, 256, 1152, BF16, BF16, true", "2, 256, 1152, BF16, F32, false", "2, 256, 1152, F32, F32, true",
            "1, 5, 2052, BF16, BF16, true"})
    void fusedMatchesSequenceAndCpu(int b, int t, int d, DType aType, DType outType, boolean withMod2) {
        int n = b * t * d;
        float[] h0 = values(11, n, -2f, 2f);
        GpuCpuPair.Both hFused = p.upload("h", h0, b, t, d);
        GpuCpuPair.Both hSeq = p.upload("hSeq", h0, b, t, d);
        GpuCpuPair.Both a = aType == DType.BF16 ? p.uploadBf16("a", bf16Values(12, n, -2f, 2f), b, t, d)
                : p.upload("a", values(12, n, -2f, 2f), b, t, d);
        GpuCpuPair.Both mod = p.upload("mod", values(13, b * 6 * d, -1f, 1f), b, 6 * d);
        GpuCpuPair.Both w = p.upload("w", values(14, d, 0.5f, 1.5f), d);
        GpuCpuPair.Both mod2 = withMod2 ? p.upload("mod2", values(15, b * 2 * d, -0.5f, 0.5f), b, 2 * d) : null;
        GpuCpuPair.Both out = p.poisoned("out", outType, b, t, d);
        GpuCpuPair.Both outSeq = p.poisoned("outSeq", outType, b, t, d);
        GpuCpuPair.Both rstd = p.poisoned("rstd", DType.F32, b * t);
        GpuCpuPair.Both rstdSeq = p.poisoned("rstdSeq", DType.F32, b * t);

        gpu.gatedResidualRmsNormModulate(hFused.gpu(), a.gpu(), mod.gpu(), 5, w.gpu(), EPS,
                withMod2 ? mod2.gpu() : null, 0, 1, out.gpu(), rstd.gpu());
        gpu.gatedResidual(hSeq.gpu(), a.gpu(), mod.gpu(), 5);
        gpu.rmsNormModulate(hSeq.gpu(), w.gpu(), EPS, withMod2 ? mod2.gpu() : null, 0, 1, outSeq.gpu(),
                rstdSeq.gpu());
        String what = "B" + b + " T" + t + " D" + d + " a " + aType + " out " + outType;
        assertBitEqual("fused vs sequence h " + what, p.gpu.download(hSeq.gpu()), p.gpu.download(hFused.gpu()));
        assertBitEqual("fused vs sequence out " + what, p.gpu.download(outSeq.gpu()), p.gpu.download(out.gpu()));
        assertBitEqual("fused vs sequence rstd " + what, p.gpu.download(rstdSeq.gpu()), p.gpu.download(rstd.gpu()));

        cpu.gatedResidualRmsNormModulate(hFused.cpu(), a.cpu(), mod.cpu(), 5, w.cpu(), EPS,
                withMod2 ? mod2.cpu() : null, 0, 1, out.cpu(), rstd.cpu());
        assertUlps("h " + what, p.cpu.download(hFused.cpu()), p.gpu.download(hFused.gpu()), 1, 1e-6f);
        float[] oc = p.cpu.download(out.cpu());
        float[] shift = withMod2 ? p.cpu.download(mod2.cpu()) : null;
        float[] tol = new float[n];
        for (int i = 0; i < n; i++) {
            int row = i / d;
            float sh = shift == null ? 0f : Math.abs(shift[(row / t) * 2 * d + i % d]);
            tol[i] = outType == DType.BF16 ? Math.abs(oc[i]) / 128f + 1e-4f
                    : 1e-5f * (Math.abs(oc[i]) + 2 * sh) + 1e-6f;
        }
        assertWithin("out " + what, oc, p.gpu.download(out.gpu()), tol);
        float[] rc = p.cpu.download(rstd.cpu());
        float[] rtol = new float[rc.length];
        for (int i = 0; i < rc.length; i++) {
            rtol[i] = 1e-5f * Math.abs(rc[i]);
        }
        assertWithin("rstd " + what, rc, p.gpu.download(rstd.gpu()), rtol);
    }

    @Test
    void outMustNotShareStorageWithH() {
        GpuCpuPair.Both h = p.upload("h", values(21, 2 * 8, -1f, 1f), 1, 2, 8);
        GpuCpuPair.Both mod = p.upload("mod", values(22, 6 * 8, -1f, 1f), 1, 6 * 8);
        GpuCpuPair.Both w = p.upload("w", values(23, 8, 0.5f, 1.5f), 8);
        assertThrows(ShapeException.class, () -> gpu.gatedResidualRmsNormModulate(h.gpu(), h.gpu(), mod.gpu(), 5,
                w.gpu(), EPS, mod.gpu(), 3, 4, h.gpu(), null));
    }
}
