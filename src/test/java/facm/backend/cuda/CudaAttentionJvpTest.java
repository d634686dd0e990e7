package facm.backend.cuda;

import facm.cuda.CudaEvent;
import facm.cuda.CudaTestSupport;
import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertWithinFractionOfMax;
import static facm.backend.cuda.GpuCpuPair.values;

/**
 * kernels/attention_jvp.cu against a float64 reference computed here (the CPU backend's attentionJvp is written in
 * parallel; switch to it once it lands), on random non-zero inputs, outputs poisoned with NaN, null tangents, T = 1,
 * 37, 256 and dh 16/64/72/128. Tolerances: out and lse rel 1e-5 of max|v| (fp32 online softmax); outDot 1e-4 of
 * the row's magnitude Σ P(|v̇| + |Ṡ||v|) + |μ||o| bounded by its max. For dh ≤ 32 out and lse must equal the forward
 * kernel's bit for bit (same arithmetic); for dh ≥ 64 the update chunk differs (8 vs 16 keys): rel 1e-5.
 */
@Tag("gpu")
class CudaAttentionJvpTest extends GpuCpuPairTestBase {
    private NetworkOps gpu;

    @Override
    void opened() {
        gpu = new CudaNetworkOps(p.gpu);
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
        assertWithinFractionOfMax("out " + shape, ref[0], o, 1e-5, 1e-3);
        assertWithinFractionOfMax("outDot " + shape, ref[1], od, 1e-4, 1e-3);
        assertWithinFractionOfMax("lse " + shape, ref[2], l, 1e-5, 1e-3);
        float[] fo = p.gpu.download(fwdOut.gpu()), fl = p.gpu.download(fwdLse.gpu());
        if (dh <= 32) {
            assertBitEqual("out vs attention forward " + shape, fo, o);
            assertBitEqual("lse vs attention forward " + shape, fl, l);
        } else {
            double[] fod = new double[fo.length];
            for (int i = 0; i < fo.length; i++) {
                fod[i] = fo[i];
            }
            assertWithinFractionOfMax("out vs attention forward " + shape, fod, o, 1e-5, 1e-3);
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

    // ---------------------------------------------------------------- qkNormRopeJvp (the other op of CudaAttentionJvp)

    private Tensor up(String name, float[] data, int... shape) {
        return data == null ? null : p.upload(name, data, shape).gpu();
    }

    private Tensor nan(String name, int... shape) {
        return p.poisoned(name, DType.F32, shape).gpu();
    }

    private float[] get(Tensor t) {
        return p.gpu.download(t);
    }


    /**
     * Tangents [qDot, kDot, vDot] ([B,H,T,dh] each): with qk-norm ẏ = w ⊙ ρ(ẋ − x·ρ²·mean_dh(x ⊙ ẋ)), then the RoPE
     * rotation of pair (2p, 2p+1) by the table entries at (token, 2p); v̇ is copied.
     */
    static double[][] qkNormRopeTangent(float[] qkv, float[] qkvDot, int b, int t, int h, int dh, float[] qw, float[] kw,
                                        float eps, float[] cos, float[] sin) {
        double[][] out = new double[3][b * h * t * dh];
        for (int bi = 0; bi < b; bi++) {
            for (int ti = 0; ti < t; ti++) {
                for (int hi = 0; hi < h; hi++) {
                    int outRow = ((bi * h + hi) * t + ti) * dh;
                    for (int part = 0; part < 3; part++) {
                        int in = (bi * t + ti) * 3 * h * dh + (part * h + hi) * dh;
                        double[] yd = new double[dh];
                        for (int i = 0; i < dh; i++) {
                            yd[i] = qkvDot == null ? 0 : qkvDot[in + i];
                        }
                        if (part < 2 && qw != null) {
                            float[] w = part == 0 ? qw : kw;
                            double ss = 0, sx = 0;
                            for (int i = 0; i < dh; i++) {
                                ss += (double) qkv[in + i] * qkv[in + i];
                                sx += qkv[in + i] * yd[i];
                            }
                            double rho = 1 / Math.sqrt(ss / dh + eps), corr = rho * rho * sx / dh;
                            for (int i = 0; i < dh; i++) {
                                yd[i] = w[i] * rho * (yd[i] - qkv[in + i] * corr);
                            }
                        }
                        if (part < 2 && cos != null) {
                            for (int pair = 0; pair < dh / 2; pair++) {
                                double c = cos[ti * dh + 2 * pair], s = sin[ti * dh + 2 * pair];
                                double y0 = yd[2 * pair], y1 = yd[2 * pair + 1];
                                yd[2 * pair] = y0 * c - y1 * s;
                                yd[2 * pair + 1] = y1 * c + y0 * s;
                            }
                        }
                        System.arraycopy(yd, 0, out[part], outRow, dh);
                    }
                }
            }
        }
        return out;
    }

    private void checkQkNormRope(long seed, int b, int t, int h, int dh, boolean norm, boolean rope, boolean dotOn) {
        Random r = new Random(seed);
        int n = b * t * 3 * h * dh;
        float[] qkv = CudaJvpTest.nonZero(r, n, -2, 2), qkvDot = dotOn ? CudaJvpTest.nonZero(r, n, -1, 1) : null;
        float[] qw = norm ? CudaJvpTest.nonZero(r, dh, -1.5, 1.5) : null, kw = norm ? CudaJvpTest.nonZero(r, dh, -1.5, 1.5) : null;
        float[] cos = null, sin = null;
        if (rope) {
            // Tables as the model builds them: one angle per channel pair, written to both of its entries.
            cos = new float[t * dh];
            sin = new float[t * dh];
            for (int ti = 0; ti < t; ti++) {
                for (int pair = 0; pair < dh / 2; pair++) {
                    double angle = (ti + 1) * Math.pow(10000, -2.0 * pair / dh);
                    cos[ti * dh + 2 * pair] = cos[ti * dh + 2 * pair + 1] = (float) Math.cos(angle);
                    sin[ti * dh + 2 * pair] = sin[ti * dh + 2 * pair + 1] = (float) Math.sin(angle);
                }
            }
        }
        Tensor in = up("qkv", qkv, b, t, 3 * h * dh), inDot = up("qkvDot", qkvDot, b, t, 3 * h * dh);
        Tensor qwt = up("qWeight", qw, dh), kwt = up("kWeight", kw, dh);
        Tensor cost = up("ropeCos", cos, t, dh), sint = up("ropeSin", sin, t, dh);
        String[] names = {"q", "k", "v"};
        Tensor[] outs = new Tensor[3], dots = new Tensor[3], fwds = new Tensor[3];
        for (int i = 0; i < 3; i++) {
            outs[i] = nan(names[i], b, h, t, dh);
            dots[i] = nan(names[i] + "Dot", b, h, t, dh);
            fwds[i] = nan(names[i] + "Forward", b, h, t, dh);
        }
        Tensor rstd = norm ? nan("rstd", b, t, 2, h) : null, fwdRstd = norm ? nan("fwdRstd", b, t, 2, h) : null;
        gpu.qkNormRopeJvp(in, inDot, h, qwt, kwt, CudaJvpTest.EPS, cost, sint, outs[0], outs[1], outs[2], dots[0], dots[1],
                dots[2], rstd);
        gpu.qkNormRope(in, h, qwt, kwt, CudaJvpTest.EPS, cost, sint, fwds[0], fwds[1], fwds[2], fwdRstd);
        String what = "B=" + b + " T=" + t + " H=" + h + " dh=" + dh + (norm ? " qk-norm" : " no norm")
                + (rope ? " rope" : " no rope") + (dotOn ? "" : " qkvDot=null");
        double[][] ref = qkNormRopeTangent(qkv, qkvDot, b, t, h, dh, qw, kw, CudaJvpTest.EPS, cos, sin);
        for (int i = 0; i < 3; i++) {
            CudaJvpTest.assertPrimal("qkNormRope " + names[i] + " vs forward " + what, get(fwds[i]), get(outs[i]), true);
            assertWithinFractionOfMax("qkNormRope " + names[i] + "Dot " + what, ref[i], get(dots[i]), CudaJvpTest.TOL,
                    1e-3);
            if (!dotOn) {
                CudaJvpTest.assertZero("qkNormRope " + names[i] + "Dot " + what, get(dots[i]));
            }
        }
        if (norm) {
            CudaJvpTest.assertPrimal("qkNormRope rstd vs forward " + what, get(fwdRstd), get(rstd), true);
        }
    }

    @Test
    void qkNormRopeJvp() {
        long seed = 60;
        for (int dh : new int[] {16, 64, 72}) {
            for (boolean norm : new boolean[] {true, false}) {
                for (boolean rope : new boolean[] {true, false}) {
                    checkQkNormRope(seed++, 2, 37, 3, dh, norm, rope, true);
                    p.closeTensors();
                }
            }
        }
    }

    @Test
    void qkNormRopeJvpNullTangentIsZero() {
        checkQkNormRope(81, 2, 37, 3, 72, true, true, false);
        checkQkNormRope(82, 1, 5, 2, 16, false, false, false);
    }
}
