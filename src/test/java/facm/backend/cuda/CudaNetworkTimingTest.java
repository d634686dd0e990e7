package facm.backend.cuda;

import facm.cuda.CudaDevice;
import facm.cuda.CudaTestSupport;
import facm.tensor.DType;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.BiFunction;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Times the network kernels at LightningDiT-XL sizes and prints throughput (a report, not a performance gate: the only
 * assertion is that the outputs are finite). syncCheck is switched off while timing, since a synchronize after every
 * launch would leave the GPU idle between them. About a second of GPU time.
 */
@Tag("gpu")
class CudaNetworkTimingTest {
    private static final int REPEATS = 10;

    private interface Launch {
        void run();
    }

    /** Mean milliseconds per call over REPEATS calls after one warm-up call. */
    private static double millis(CudaDevice device, CudaBackend gpu, Launch launch) {
        return GpuTiming.millis(device, REPEATS, launch::run);
    }

    @Test
    void reportThroughputAtXlSizes() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        List<Tensor> made = new ArrayList<>();
        try (CudaBackend gpu = CudaBackend.on(device)) {
            try {
                timeAll(device, gpu, made);
            } finally {
                made.forEach(Tensor::close);
            }
        }
    }

    private static void timeAll(CudaDevice device, CudaBackend gpu, List<Tensor> made) {
        CudaNetworkOps ops = new CudaNetworkOps(gpu);
        BiFunction<String, int[], Tensor> normal = (name, shape) -> {
            Tensor t = gpu.empty(name, DType.F32, shape);
            gpu.randomNormal(t, name.hashCode(), 0);
            made.add(t);
            return t;
        };
        System.out.println("network kernel timings on " + gpu.describe());

        int b = 64, t = 256, d = 1152, heads = 16, dh = 72, f = 3072;
        Tensor x = normal.apply("x", new int[] {b, t, d});
        Tensor w = normal.apply("w", new int[] {d});
        Tensor mod = normal.apply("mod", new int[] {b, 6 * d});
        Tensor out = normal.apply("out", new int[] {b, t, d});
        Tensor rstd = normal.apply("rstd", new int[] {b, t});
        double bytes = 2.0 * x.bytes();
        report("rmsNormModulate [64,256,1152]", millis(device, gpu,
                () -> ops.rmsNormModulate(x, w, 1e-6f, mod, 0, 1, out, rstd)), bytes, 0);
        report("gatedResidual [64,256,1152]", millis(device, gpu, () -> ops.gatedResidual(out, x, mod, 2)),
                3.0 * x.bytes(), 0);

        Tensor gu = normal.apply("gu", new int[] {b, t, 2 * f});
        Tensor hidden = normal.apply("hidden", new int[] {b, t, f});
        report("swiglu [64,256,6144]", millis(device, gpu, () -> ops.swiglu(gu, hidden)),
                gu.bytes() + hidden.bytes(), 0);

        Tensor qkv = normal.apply("qkv", new int[] {b, t, 3 * heads * dh});
        Tensor qw = normal.apply("qw", new int[] {dh});
        Tensor kw = normal.apply("kw", new int[] {dh});
        Tensor cos = normal.apply("cos", new int[] {t, dh});
        Tensor sin = normal.apply("sin", new int[] {t, dh});
        Tensor q = normal.apply("q", new int[] {b, heads, t, dh});
        Tensor k = normal.apply("k", new int[] {b, heads, t, dh});
        Tensor v = normal.apply("v", new int[] {b, heads, t, dh});
        Tensor qkRstd = normal.apply("qkRstd", new int[] {b, t, 2, heads});
        report("qkNormRope [64,256,3456]", millis(device, gpu,
                () -> ops.qkNormRope(qkv, heads, qw, kw, 1e-6f, cos, sin, q, k, v, qkRstd)), 2.0 * qkv.bytes(), 0);

        Tensor att = normal.apply("att", new int[] {b, t, heads * dh});
        Tensor lse = normal.apply("lse", new int[] {b, heads, t});
        // q kᵀ and P v: 2 · 2·T²·dh flops per (batch, head).
        double flops = 4.0 * t * t * dh * b * heads;
        report("attention B64 H16 T256 dh72", millis(device, gpu,
                () -> ops.attention(q, k, v, (float) (1 / Math.sqrt(dh)), att, lse)), 0, flops);
        for (int headDim : new int[] {64, 128}) {
            int bl = 4, tl = 1024;
            Tensor ql = normal.apply("ql" + headDim, new int[] {bl, heads, tl, headDim});
            Tensor ol = normal.apply("ol" + headDim, new int[] {bl, tl, heads * headDim});
            report("attention B4 H16 T1024 dh" + headDim, millis(device, gpu,
                    () -> ops.attention(ql, ql, ql, (float) (1 / Math.sqrt(headDim)), ol, null)), 0,
                    4.0 * tl * tl * headDim * bl * heads);
        }
        float[] sample = gpu.download(att);
        for (int i = 0; i < sample.length; i += 997) {
            assertTrue(Float.isFinite(sample[i]), "attention output finite at " + i);
        }
    }

    private static void report(String what, double ms, double bytes, double flops) {
        StringBuilder s = new StringBuilder(String.format(Locale.ROOT, "  %-34s %8.3f ms", what, ms));
        if (bytes > 0) {
            s.append(String.format(Locale.ROOT, "  %7.1f GB/s", bytes / (ms * 1e-3) / 1e9));
        }
        if (flops > 0) {
            s.append(String.format(Locale.ROOT, "  %7.2f TFLOP/s (fp32)", flops / (ms * 1e-3) / 1e12));
        }
        System.out.println(s);
    }
}
