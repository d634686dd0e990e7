package facm.backend.cuda;

import facm.cuda.CudaDevice;
import facm.cuda.CudaTestSupport;
import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Times the backward kernels at LightningDiT-XL/1 sizes (B = 32, T = 256, D = 1152, H = 16, dh = 72) and prints the
 * results: a report, not a performance gate (the only assertion is that the gradients are finite). syncCheck is off
 * while timing. Attention TFLOP/s counts the 5 T²·dh matrix products a backward pass needs (10·T²·dh flops per head,
 * the usual flash-attention accounting); the fp32 kernels execute 7 (S and dP are recomputed in both kernels).
 */
@Tag("gpu")
class CudaBackwardTimingTest {
    private static final int REPEATS = 10;

    private static double millis(CudaDevice device, Runnable launch) {
        return GpuTiming.millis(device, REPEATS, launch);
    }

    @Test
    void reportBackwardTimingsAtXlSizes() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        List<Tensor> made = new ArrayList<>();
        try (CudaBackend gpu = CudaBackend.on(device)) {
            try {
                timeAll(device, gpu, made);
            } finally {
                made.forEach(Tensor::close);
                ((CudaNetworkOps) gpu.network()).close(); // scratch back to the arena
            }
        }
    }

    private static void timeAll(CudaDevice device, CudaBackend gpu, List<Tensor> made) {
        NetworkOps ops = gpu.network();
        int b = 32, t = 256, d = 1152, heads = 16, dh = 72, f = 3072;
        java.util.function.BiFunction<String, int[], Tensor> normal = (name, shape) -> {
            Tensor x = gpu.empty(name, DType.F32, shape);
            gpu.randomNormal(x, name.hashCode(), 0);
            made.add(x);
            return x;
        };
        System.out.println("backward kernel timings on " + gpu.describe());

        Tensor q = normal.apply("q", new int[] {b, heads, t, dh});
        Tensor k = normal.apply("k", new int[] {b, heads, t, dh});
        Tensor v = normal.apply("v", new int[] {b, heads, t, dh});
        Tensor out = normal.apply("out", new int[] {b, t, heads * dh});
        Tensor lse = normal.apply("lse", new int[] {b, heads, t});
        float scale = (float) (1 / Math.sqrt(dh));
        ops.attention(q, k, v, scale, out, lse);
        Tensor gradOut = normal.apply("gradOut", new int[] {b, t, heads * dh});
        Tensor gq = normal.apply("gq", new int[] {b, heads, t, dh});
        Tensor gk = normal.apply("gk", new int[] {b, heads, t, dh});
        Tensor gv = normal.apply("gv", new int[] {b, heads, t, dh});
        double flops = 10.0 * t * t * dh * b * heads;
        double forward = millis(device, () -> ops.attention(q, k, v, scale, out, lse));
        report("attention forward B32 H16 T256 dh72", forward, 4.0 * t * t * dh * b * heads / (forward * 1e9));
        double backward = millis(device, () -> ops.attentionBackward(q, k, v, scale, out, lse, gradOut, gq, gk, gv));
        report("attentionBackward B32 H16 T256 dh72", backward, flops / (backward * 1e9));

        Tensor qkv = normal.apply("qkv", new int[] {b, t, 3 * heads * dh});
        Tensor qw = normal.apply("qw", new int[] {dh});
        Tensor kw = normal.apply("kw", new int[] {dh});
        Tensor qkRstd = normal.apply("qkRstd", new int[] {b, t, 2, heads});
        ops.qkNormRope(qkv, heads, qw, kw, 1e-6f, null, null, q, k, v, qkRstd);
        Tensor gradQkv = normal.apply("gradQkv", new int[] {b, t, 3 * heads * dh});
        Tensor gqw = normal.apply("gqw", new int[] {dh});
        Tensor gkw = normal.apply("gkw", new int[] {dh});
        report("qkNormRopeBackward [32,256,3456]", millis(device, () -> ops.qkNormRopeBackward(qkv, heads, qw, kw,
                1e-6f, null, null, qkRstd, gq, gk, gv, gradQkv, gqw, gkw)), 0);

        Tensor x = normal.apply("x", new int[] {b, t, d});
        Tensor w = normal.apply("w", new int[] {d});
        Tensor mod = normal.apply("mod", new int[] {b, 6 * d});
        Tensor normed = normal.apply("normed", new int[] {b, t, d});
        Tensor rstd = normal.apply("rstd", new int[] {b, t});
        ops.rmsNormModulate(x, w, 1e-6f, mod, 0, 1, normed, rstd);
        Tensor gradX = normal.apply("gradX", new int[] {b, t, d});
        Tensor gradW = normal.apply("gradW", new int[] {d});
        Tensor gradMod = normal.apply("gradMod", new int[] {b, 6 * d});
        report("rmsNormModulateBackward [32,256,1152]", millis(device, () -> ops.rmsNormModulateBackward(x, w, 1e-6f,
                mod, 0, 1, rstd, normed, gradX, gradW, gradMod)), 0);
        report("gatedResidualBackward [32,256,1152]", millis(device, () -> ops.gatedResidualBackward(x, mod, 2,
                normed, gradX, gradMod)), 0);

        Tensor gu = normal.apply("gu", new int[] {b, t, 2 * f});
        Tensor hidden = normal.apply("hidden", new int[] {b, t, f});
        Tensor gradGu = normal.apply("gradGu", new int[] {b, t, 2 * f});
        report("swigluBackward [32,256,6144]", millis(device, () -> ops.swigluBackward(gu, hidden, gradGu)), 0);

        for (Tensor g : new Tensor[] {gq, gk, gv, gradX, gradW, gqw}) {
            float[] sample = gpu.download(g);
            for (int i = 0; i < sample.length; i += 997) {
                assertTrue(Float.isFinite(sample[i]), g.describe() + " finite at " + i);
            }
        }
    }

    private static void report(String what, double ms, double tflops) {
        String line = String.format(Locale.ROOT, "  %-38s %8.3f ms", what, ms);
        if (tflops > 0) {
            line += String.format(Locale.ROOT, "  %6.2f TFLOP/s (fp32)", tflops);
        }
        System.out.println(line);
    }
}
