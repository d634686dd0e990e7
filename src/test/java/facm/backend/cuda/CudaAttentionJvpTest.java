package facm.backend.cuda;

import facm.cuda.CudaEvent;
import facm.cuda.CudaTestSupport;
import facm.tensor.NetworkOps;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.values;

/**
 * kernels/attention_jvp.cu against a float64 reference computed here (the CPU backend's attentionJvp is written in
 * parallel; switch to it once it lands), on random non-zero inputs, outputs poisoned with NaN, null tangents, T = 1,
 * 37, 256 and dh 16/64/72/128. Tolerances: out and lse rel 1e-5 of max|v| (fp32 online softmax); outDot 1e-4 of
 * the row's magnitude Σ P(|v̇| + |Ṡ||v|) + |μ||o| bounded by its max. For dh ≤ 32 out and lse must equal the forward
 * kernel's bit for bit (same arithmetic); for dh ≥ 64 the update chunk differs (8 vs 16 keys): rel 1e-5.
 */
@Tag("gpu")
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class CudaAttentionJvpTest {
    private GpuCpuPair p;
    private NetworkOps gpu;

    @BeforeEach
    void open() {
        if (p == null) {
            p = GpuCpuPair.open();
            gpu = new CudaNetworkOps(p.gpu);
        }
    }

    @AfterEach
    void closeTensors() {
        if (p != null) {
            p.closeTensors();
        }
    }

    @AfterAll
    void close() {
        if (p != null) {
            p.close();
        }
    }

    /** Reference [out, outDot, lse] in float64; null tangents are zero. */
    static double[][] reference(float[] q, float[] k, float[] v, float[] qd, float[] kd, float[] vd, int b, int h,
                                int t, int dh, float scale) {
        double[] out = new double[b * t * h * dh], outDot = new double[out.length], lse = new double[b * h * t];
        for (int bh = 0; bh < b * h; bh++) {
            int base = bh * t * dh;
            for (int i = 0; i < t; i++) {
                double[] s = new double[t], sd = new double[t];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < t; j++) {
                    double dot = 0, dotd = 0;
                    for (int d = 0; d < dh; d++) {
                        double qi = q[base + i * dh + d], kj = k[base + j * dh + d];
                        dot += qi * kj;
                        dotd += (qd == null ? 0 : qd[base + i * dh + d]) * kj
                                + qi * (kd == null ? 0 : kd[base + j * dh + d]);
                    }
                    s[j] = scale * dot;
                    sd[j] = scale * dotd;
                    max = Math.max(max, s[j]);
                }
                double l = 0, mu = 0;
                for (int j = 0; j < t; j++) {
                    s[j] = Math.exp(s[j] - max);
                    l += s[j];
                }
                for (int j = 0; j < t; j++) {
                    s[j] /= l;
                    mu += s[j] * sd[j];
                }
                lse[bh * t + i] = max + Math.log(l);
                int o = ((bh / h * t + i) * h + bh % h) * dh;
                for (int d = 0; d < dh; d++) {
                    double acc = 0, accd = 0;
                    for (int j = 0; j < t; j++) {
                        double vj = v[base + j * dh + d];
                        acc += s[j] * vj;
                        accd += s[j] * ((vd == null ? 0 : vd[base + j * dh + d]) + sd[j] * vj);
                    }
                    out[o + d] = acc;
                    outDot[o + d] = accd - mu * acc;
                }
            }
        }
        return new double[][] {out, outDot, lse};
    }

    static void assertClose(String what, double[] expected, float[] actual, double tol) {
        double scale = 0;
        for (double e : expected) {
            scale = Math.max(scale, Math.abs(e));
        }
        for (int i = 0; i < expected.length; i++) {
            double err = Math.abs(expected[i] - actual[i]);
            if (!(err <= tol * Math.max(scale, 1e-3))) {
                throw new AssertionError(what + "[" + i + "]: expected " + expected[i] + ", got " + actual[i]
                        + " (tolerance " + tol + " of max " + scale + ")");
            }
        }
    }

    private void check(int b, int h, int t, int dh, boolean nullQDot, boolean nullKvDot, long seed) {
        int n = b * h * t * dh;
        float scale = (float) (1 / Math.sqrt(dh));
        float[] q = values(seed, n, -2, 2), k = values(seed + 1, n, -2, 2), v = values(seed + 2, n, -1, 1);
        float[] qd = nullQDot ? null : values(seed + 3, n, -1, 1);
        float[] kd = nullKvDot ? null : values(seed + 4, n, -1, 1);
        float[] vd = nullKvDot ? null : values(seed + 5, n, -1, 1);
        var qt = p.upload("q", q, b, h, t, dh);
        var kt = p.upload("k", k, b, h, t, dh);
        var vt = p.upload("v", v, b, h, t, dh);
        var qdt = qd == null ? null : p.upload("qDot", qd, b, h, t, dh).gpu();
        var kdt = kd == null ? null : p.upload("kDot", kd, b, h, t, dh).gpu();
        var vdt = vd == null ? null : p.upload("vDot", vd, b, h, t, dh).gpu();
        var out = p.poisoned("out", facm.tensor.DType.F32, b, t, h * dh);
        var outDot = p.poisoned("outDot", facm.tensor.DType.F32, b, t, h * dh);
        var lse = p.poisoned("lse", facm.tensor.DType.F32, b, h, t);
        var fwdOut = p.poisoned("fwdOut", facm.tensor.DType.F32, b, t, h * dh);
        var fwdLse = p.poisoned("fwdLse", facm.tensor.DType.F32, b, h, t);
        gpu.attentionJvp(qt.gpu(), kt.gpu(), vt.gpu(), qdt, kdt, vdt, scale, out.gpu(), outDot.gpu(), lse.gpu());
        gpu.attention(qt.gpu(), kt.gpu(), vt.gpu(), scale, fwdOut.gpu(), fwdLse.gpu());
        String shape = "B=" + b + " H=" + h + " T=" + t + " dh=" + dh + (nullQDot ? " qDot=null" : "")
                + (nullKvDot ? " kDot,vDot=null" : "");
        double[][] ref = reference(q, k, v, qd, kd, vd, b, h, t, dh, scale);
        float[] o = p.gpu.download(out.gpu()), od = p.gpu.download(outDot.gpu()), l = p.gpu.download(lse.gpu());
        assertClose("out " + shape, ref[0], o, 1e-5);
        assertClose("outDot " + shape, ref[1], od, 1e-4);
        assertClose("lse " + shape, ref[2], l, 1e-5);
        float[] fo = p.gpu.download(fwdOut.gpu()), fl = p.gpu.download(fwdLse.gpu());
        if (dh <= 32) {
            assertBitEqual("out vs attention forward " + shape, fo, o);
            assertBitEqual("lse vs attention forward " + shape, fl, l);
        } else {
            double[] fod = new double[fo.length];
            for (int i = 0; i < fo.length; i++) {
                fod[i] = fo[i];
            }
            assertClose("out vs attention forward " + shape, fod, o, 1e-5);
        }
    }

    @Test
    void matchesFloat64ReferenceOnOddAndRealisticShapes() {
        long seed = 100;
        for (int dh : new int[] {16, 32, 64, 72, 128}) {
            for (int t : new int[] {1, 37, 256}) {
                int b = t == 256 ? 1 : 2, h = t == 256 ? 2 : 3;
                check(b, h, t, dh, false, false, seed += 10);
                p.closeTensors();
            }
        }
    }

    @Test
    void nullTangentsAreZero() {
        check(2, 2, 37, 72, true, false, 7);
        check(2, 2, 37, 64, false, true, 8);
        check(1, 2, 70, 16, true, true, 9);
    }

    /** Not asserted: attentionJvp next to the forward at the XL/1 shape (B=32, H=16, T=256, dh=72). */
    @Test
    void timingAtXlShape() {
        int b = 32, h = 16, t = 256, dh = 72, n = b * h * t * dh;
        float scale = (float) (1 / Math.sqrt(dh));
        var q = p.gpu.upload("q", values(1, n, -2, 2), b, h, t, dh);
        var k = p.gpu.upload("k", values(2, n, -2, 2), b, h, t, dh);
        var v = p.gpu.upload("v", values(3, n, -1, 1), b, h, t, dh);
        var qd = p.gpu.upload("qDot", values(4, n, -1, 1), b, h, t, dh);
        var out = p.gpu.empty("out", facm.tensor.DType.F32, b, t, h * dh);
        var outDot = p.gpu.empty("outDot", facm.tensor.DType.F32, b, t, h * dh);
        var lse = p.gpu.empty("lse", facm.tensor.DType.F32, b, h, t);
        var dev = CudaTestSupport.deviceWithKernels();
        int reps = 20;
        try (CudaEvent start = CudaEvent.create(dev); CudaEvent mid = CudaEvent.create(dev);
             CudaEvent end = CudaEvent.create(dev)) {
            gpu.attention(q, k, v, scale, out, lse);
            gpu.attentionJvp(q, k, v, qd, k, v, scale, out, outDot, lse);
            start.record(dev.stream());
            for (int i = 0; i < reps; i++) {
                gpu.attention(q, k, v, scale, out, lse);
            }
            mid.record(dev.stream());
            for (int i = 0; i < reps; i++) {
                gpu.attentionJvp(q, k, v, qd, k, v, scale, out, outDot, lse);
            }
            end.record(dev.stream());
            end.synchronize();
            System.out.printf("attention XL/1 (B=32 H=16 T=256 dh=72, %s): forward %.3f ms, jvp %.3f ms%n",
                    dev.name(), mid.elapsedMillisSince(start) / reps, end.elapsedMillisSince(mid) / reps);
        } finally {
            for (var x : new facm.tensor.Tensor[] {q, k, v, qd, out, outDot, lse}) {
                x.close();
            }
        }
    }
}
