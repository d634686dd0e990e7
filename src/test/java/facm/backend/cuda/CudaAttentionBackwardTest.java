package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertWithin;
import static facm.backend.cuda.GpuCpuPair.values;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Backward kernels of qk-norm + RoPE (kernels/rope.cu) and of the fused attention (kernels/attention.cu) against the
 * CPU reference (float64 inside), on random non-zero inputs: T = 1, 37, 130, 256, dh = 16, 32, 64, 72, 128, B·H up to
 * 2·16, activation gradients poisoned with NaN, qk-norm weight gradients starting from random values (accumulation).
 *
 * <p>Tolerances, from float64 magnitudes of the terms (sums here cancel, so a bound relative to the result would be
 * meaningless): qkNormRopeBackward 1e-5 of the RoPE-transposed and RMSNorm terms (as in CudaNormBackwardTest), weight
 * gradients 1e-5 of Σ|gy·n| plus 2⁻²³ of the initial value. attentionBackward 4e-6 of
 * gradV: Σ_i A_ij|dO_i|, gradQ: s·Σ_j A_ij(|dP_ij − D_i| + Σ|dO_i v_j| + Σ|dO_i O_i|)|k_j|, gradK likewise with q_i,
 * where A_ij = P_ij·(2 + s·Σ_d|q_id k_jd| + |lse_i|) widens each probability by the conditioning of its fp32 score
 * and of exp2(score − lse) (the GPU recomputes P in fp32 from the saved lse). In host emulation of the kernels
 * against float64 the worst error was 1/60 of this bound.
 */
@Tag("gpu")
class CudaAttentionBackwardTest extends GpuCpuPairTestBase {
    private static final float EPS = 1e-6f;

    private NetworkOps gpu;
    private NetworkOps cpu;

    @Override
    void opened() {
        gpu = p.gpu.network();
        cpu = p.cpu.network();
    }

    @Override
    void closing() {
        ((CudaNetworkOps) p.gpu.network()).close(); // scratch back to the arena
    }

    // ---------------------------------------------------------------- qk-norm + RoPE backward

    private void checkQkNormRope(int b, int t, int heads, int dh, boolean norm, boolean rope, long seed) {
        String what = "B" + b + " T" + t + " H" + heads + " dh" + dh + (norm ? " norm" : "") + (rope ? " rope" : "");
        int width = 3 * heads * dh, n = b * heads * t * dh;
        float[] qkv = values(seed, b * t * width, -2f, 2f);
        float[] qw = values(seed + 1, dh, 0.5f, 1.5f), kw = values(seed + 2, dh, 0.5f, 1.5f);
        float[] qwInit = values(seed + 3, dh, -1f, 1f), kwInit = values(seed + 4, dh, -1f, 1f);
        float[] cos = new float[t * dh], sin = new float[t * dh];
        for (int tok = 0; tok < t; tok++) {
            for (int pair = 0; pair < dh / 2; pair++) {
                double angle = 0.37 * tok + 1.3 * pair;
                cos[tok * dh + 2 * pair] = cos[tok * dh + 2 * pair + 1] = (float) Math.cos(angle);
                sin[tok * dh + 2 * pair] = sin[tok * dh + 2 * pair + 1] = (float) Math.sin(angle);
            }
        }
        float[][] grads = {values(seed + 5, n, -1f, 1f), values(seed + 6, n, -1f, 1f), values(seed + 7, n, -1f, 1f)};
        float[] rstd = new float[b * t * 2 * heads];
        float[] tolQkv = new float[qkv.length], tolQw = new float[dh], tolKw = new float[dh];
        for (int j = 0; j < dh; j++) {
            tolQw[j] = 0x1p-23f * Math.abs(qwInit[j]);
            tolKw[j] = 0x1p-23f * Math.abs(kwInit[j]);
        }
        double[] gy = new double[dh], mag = new double[dh];
        for (int bi = 0; bi < b; bi++) {
            for (int tok = 0; tok < t; tok++) {
                for (int part = 0; part < 2; part++) {
                    for (int h = 0; h < heads; h++) {
                        int src = (bi * t + tok) * width + (part * heads + h) * dh;
                        int row = ((bi * heads + h) * t + tok) * dh;
                        for (int pair = 0; pair < dh / 2; pair++) {
                            double c = rope ? cos[tok * dh + 2 * pair] : 1, s = rope ? sin[tok * dh + 2 * pair] : 0;
                            double z0 = grads[part][row + 2 * pair], z1 = grads[part][row + 2 * pair + 1];
                            gy[2 * pair] = z0 * c + z1 * s;
                            gy[2 * pair + 1] = z1 * c - z0 * s;
                            mag[2 * pair] = Math.abs(z0 * c) + Math.abs(z1 * s);
                            mag[2 * pair + 1] = Math.abs(z1 * c) + Math.abs(z0 * s);
                        }
                        if (!norm) {
                            for (int j = 0; j < dh; j++) {
                                tolQkv[src + j] = (float) (1e-5 * mag[j] + 1e-30);
                            }
                            continue;
                        }
                        double ss = 0;
                        for (int j = 0; j < dh; j++) {
                            ss += (double) qkv[src + j] * qkv[src + j];
                        }
                        float rho = (float) (1 / Math.sqrt(ss / dh + EPS));
                        rstd[((bi * t + tok) * 2 + part) * heads + h] = rho;
                        float[] w = part == 0 ? qw : kw;
                        float[] tolW = part == 0 ? tolQw : tolKw;
                        double dotMag = 0;
                        for (int j = 0; j < dh; j++) {
                            double nj = qkv[src + j] * (double) rho;
                            dotMag += mag[j] * Math.abs(w[j] * nj);
                            tolW[j] += (float) (1e-5 * mag[j] * Math.abs(nj));
                        }
                        for (int j = 0; j < dh; j++) {
                            double nj = qkv[src + j] * (double) rho;
                            double terms = mag[j] * Math.abs(w[j]) + Math.abs(nj) * dotMag / dh;
                            tolQkv[src + j] = (float) (1e-5 * rho * terms + 1e-30);
                        }
                    }
                }
            }
        }
        var in = p.upload("qkv", qkv, b, t, width);
        var qws = norm ? p.upload("qw", qw, dh) : null;
        var kws = norm ? p.upload("kw", kw, dh) : null;
        var cs = rope ? p.upload("cos", cos, t, dh) : null;
        var sn = rope ? p.upload("sin", sin, t, dh) : null;
        var rs = norm ? p.upload("rstd", rstd, b, t, 2, heads) : null;
        var gq = p.upload("gradQ", grads[0], b, heads, t, dh);
        var gk = p.upload("gradK", grads[1], b, heads, t, dh);
        var gv = p.upload("gradV", grads[2], b, heads, t, dh);
        var gradQkv = p.poisoned("gradQkv", DType.F32, b, t, width);
        var gqw = norm ? p.upload("gradQWeight", qwInit, dh) : null;
        var gkw = norm ? p.upload("gradKWeight", kwInit, dh) : null;
        gpu.qkNormRopeBackward(in.gpu(), heads, norm ? qws.gpu() : null, norm ? kws.gpu() : null, EPS,
                rope ? cs.gpu() : null, rope ? sn.gpu() : null, norm ? rs.gpu() : null, gq.gpu(), gk.gpu(), gv.gpu(),
                gradQkv.gpu(), norm ? gqw.gpu() : null, norm ? gkw.gpu() : null);
        cpu.qkNormRopeBackward(in.cpu(), heads, norm ? qws.cpu() : null, norm ? kws.cpu() : null, EPS,
                rope ? cs.cpu() : null, rope ? sn.cpu() : null, norm ? rs.cpu() : null, gq.cpu(), gk.cpu(), gv.cpu(),
                gradQkv.cpu(), norm ? gqw.cpu() : null, norm ? gkw.cpu() : null);
        assertWithin("qkNormRopeBackward gradQkv " + what, p.cpu.download(gradQkv.cpu()),
                p.gpu.download(gradQkv.gpu()), tolQkv);
        if (norm) {
            assertWithin("qkNormRopeBackward gradQWeight " + what, p.cpu.download(gqw.cpu()),
                    p.gpu.download(gqw.gpu()), tolQw);
            assertWithin("qkNormRopeBackward gradKWeight " + what, p.cpu.download(gkw.cpu()),
                    p.gpu.download(gkw.gpu()), tolKw);
        }
    }

    @Test
    void qkNormRopeBackwardMatchesCpu() {
        checkQkNormRope(2, 37, 3, 72, true, true, 300);
        checkQkNormRope(2, 256, 16, 72, true, true, 301);  // XL/1 layout: 8192 head vectors, 512 blocks of partials
        checkQkNormRope(1, 1, 2, 64, false, true, 302);
        checkQkNormRope(1, 5, 2, 128, true, false, 303);
        checkQkNormRope(1, 3, 1, 16, false, false, 304);
        checkQkNormRope(1, 4, 2, 130, true, true, 305);    // 65 pairs: three pairs on lane 0
    }

    @Test
    void qkNormRopeBackwardRequiresRstdWithNormAndNoWeightGradsWithout() {
        int b = 1, t = 3, heads = 2, dh = 16, n = b * heads * t * dh;
        var qkv = p.upload("qkv", values(310, b * t * 3 * heads * dh, -1f, 1f), b, t, 3 * heads * dh);
        var w = p.upload("w", values(311, dh, 0.5f, 1.5f), dh);
        var g = p.upload("g", values(312, n, -1f, 1f), b, heads, t, dh);
        var out = p.poisoned("gradQkv", DType.F32, b, t, 3 * heads * dh);
        var gw = p.poisoned("gradW", DType.F32, dh);
        assertThrows(NullPointerException.class, () -> gpu.qkNormRopeBackward(qkv.gpu(), heads, w.gpu(), w.gpu(), EPS,
                null, null, null, g.gpu(), g.gpu(), g.gpu(), out.gpu(), null, null));
        assertThrows(IllegalArgumentException.class, () -> gpu.qkNormRopeBackward(qkv.gpu(), heads, null, null, EPS,
                null, null, null, g.gpu(), g.gpu(), g.gpu(), out.gpu(), gw.gpu(), null));
    }

    // ---------------------------------------------------------------- attention backward

    /** Inputs of one attention backward, identical on both backends (out and lse from the CPU forward). */
    private record AttentionCase(GpuCpuPair.Both q, GpuCpuPair.Both k, GpuCpuPair.Both v, GpuCpuPair.Both out,
                                 GpuCpuPair.Both lse, GpuCpuPair.Both gradOut, float[][] host) {
    }

    private AttentionCase attentionCase(int b, int heads, int t, int dh, float range, float scale, long seed) {
        int n = b * heads * t * dh;
        float[] qv = values(seed, n, -range, range), kv = values(seed + 1, n, -range, range);
        float[] vv = values(seed + 2, n, -1f, 1f), gv = values(seed + 3, n, -1f, 1f);
        var q = p.upload("q", qv, b, heads, t, dh);
        var k = p.upload("k", kv, b, heads, t, dh);
        var v = p.upload("v", vv, b, heads, t, dh);
        var outCpu = p.cpu.empty("outCpu", DType.F32, b, t, heads * dh);
        var lseCpu = p.cpu.empty("lseCpu", DType.F32, b, heads, t);
        cpu.attention(q.cpu(), k.cpu(), v.cpu(), scale, outCpu, lseCpu);
        float[] ov = p.cpu.download(outCpu), lv = p.cpu.download(lseCpu);
        outCpu.close();
        lseCpu.close();
        var out = p.upload("out", ov, b, t, heads * dh);
        var lse = p.upload("lse", lv, b, heads, t);
        var gradOut = p.upload("gradOut", gv, b, t, heads * dh);
        return new AttentionCase(q, k, v, out, lse, gradOut, new float[][] {qv, kv, vv, ov, lv, gv});
    }

    private void checkAttention(int b, int heads, int t, int dh, float scale, float range, long seed) {
        String what = "B" + b + " H" + heads + " T" + t + " dh" + dh + " scale " + scale;
        AttentionCase c = attentionCase(b, heads, t, dh, range, scale, seed);
        int[] shape = {b, heads, t, dh};
        var gq = p.poisoned("gradQ", DType.F32, shape);
        var gk = p.poisoned("gradK", DType.F32, shape);
        var gv = p.poisoned("gradV", DType.F32, shape);
        gpu.attentionBackward(c.q.gpu(), c.k.gpu(), c.v.gpu(), scale, c.out.gpu(), c.lse.gpu(), c.gradOut.gpu(),
                gq.gpu(), gk.gpu(), gv.gpu());
        cpu.attentionBackward(c.q.cpu(), c.k.cpu(), c.v.cpu(), scale, c.out.cpu(), c.lse.cpu(), c.gradOut.cpu(),
                gq.cpu(), gk.cpu(), gv.cpu());
        float[][] tol = AttentionBackwardBounds.tolerances(c.host, b, heads, t, dh, scale, 4e-6);
        assertWithin("attentionBackward gradQ " + what, p.cpu.download(gq.cpu()), p.gpu.download(gq.gpu()), tol[0]);
        assertWithin("attentionBackward gradK " + what, p.cpu.download(gk.cpu()), p.gpu.download(gk.gpu()), tol[1]);
        assertWithin("attentionBackward gradV " + what, p.cpu.download(gv.cpu()), p.gpu.download(gv.gpu()), tol[2]);
    }

    @Test
    void attentionBackwardSmallAndTailShapes() {
        checkAttention(1, 1, 1, 72, 0.11f, 2f, 400);
        checkAttention(1, 2, 37, 16, 0.25f, 2f, 401);
        checkAttention(2, 3, 37, 72, (float) (1 / Math.sqrt(72)), 2f, 402);
        checkAttention(1, 1, 65, 32, 0.2f, 2f, 403);
        checkAttention(2, 1, 33, 128, (float) (1 / Math.sqrt(128)), 2f, 404);
        checkAttention(1, 2, 130, 64, 0.125f, 2f, 405);
    }

    @Test
    void attentionBackwardRealisticShapes() {
        checkAttention(2, 16, 256, 72, (float) (1 / Math.sqrt(72)), 2f, 410);  // XL/1
        checkAttention(2, 12, 64, 64, 0.125f, 2f, 411);                         // B/2
        checkAttention(1, 2, 256, 128, (float) (1 / Math.sqrt(128)), 2f, 412);
    }

    @Test
    void attentionBackwardWithLargeScores() {
        checkAttention(1, 2, 200, 72, 1f, 2f, 420);  // scores spread ~±40: most probabilities underflow
        checkAttention(1, 1, 97, 32, 1f, 2f, 421);
    }

    @Test
    void attentionBackwardIsDeterministicAndOutputsAreOptional() {
        int b = 2, heads = 4, t = 130, dh = 72;
        float scale = (float) (1 / Math.sqrt(dh));
        AttentionCase c = attentionCase(b, heads, t, dh, 2f, scale, 430);
        int[] shape = {b, heads, t, dh};
        float[][] first = new float[3][];
        for (int run = 0; run < 2; run++) {
            var gq = p.poisoned("gradQ" + run, DType.F32, shape);
            var gk = p.poisoned("gradK" + run, DType.F32, shape);
            var gv = p.poisoned("gradV" + run, DType.F32, shape);
            gpu.attentionBackward(c.q.gpu(), c.k.gpu(), c.v.gpu(), scale, c.out.gpu(), c.lse.gpu(), c.gradOut.gpu(),
                    gq.gpu(), gk.gpu(), gv.gpu());
            float[][] now = {p.gpu.download(gq.gpu()), p.gpu.download(gk.gpu()), p.gpu.download(gv.gpu())};
            if (run == 0) {
                first = now;
            } else {
                for (int i = 0; i < 3; i++) {
                    assertBitEqual("attentionBackward run 2 vs run 1, output " + i, first[i], now[i]);
                }
            }
        }
        // Each output alone gives the same bits as the full call.
        var onlyK = p.poisoned("onlyK", DType.F32, shape);
        gpu.attentionBackward(c.q.gpu(), c.k.gpu(), c.v.gpu(), scale, c.out.gpu(), c.lse.gpu(), c.gradOut.gpu(),
                null, onlyK.gpu(), null);
        assertBitEqual("attentionBackward gradK alone", first[1], p.gpu.download(onlyK.gpu()));
        var onlyQ = p.poisoned("onlyQ", DType.F32, shape);
        gpu.attentionBackward(c.q.gpu(), c.k.gpu(), c.v.gpu(), scale, c.out.gpu(), c.lse.gpu(), c.gradOut.gpu(),
                onlyQ.gpu(), null, null);
        assertBitEqual("attentionBackward gradQ alone", first[0], p.gpu.download(onlyQ.gpu()));
    }

    @Test
    void attentionBackwardRejectsBadArguments() {
        var q = p.upload("q", values(440, 2 * 5 * 24, -1f, 1f), 1, 2, 5, 24);
        var out = p.upload("out", values(441, 5 * 48, -1f, 1f), 1, 5, 48);
        var lse = p.upload("lse", values(442, 10, -1f, 1f), 1, 2, 5);
        var g = p.poisoned("g", DType.F32, 1, 2, 5, 24);
        assertThrows(ShapeException.class, () -> gpu.attentionBackward(q.gpu(), q.gpu(), q.gpu(), 0.2f, out.gpu(),
                lse.gpu(), out.gpu(), g.gpu(), null, null));  // dh 24 has no kernel
        var q16 = p.upload("q16", values(443, 2 * 5 * 16, -1f, 1f), 1, 2, 5, 16);
        var out16 = p.upload("out16", values(444, 5 * 32, -1f, 1f), 1, 5, 32);
        assertThrows(NullPointerException.class, () -> gpu.attentionBackward(q16.gpu(), q16.gpu(), q16.gpu(), 0.25f,
                out16.gpu(), null, out16.gpu(), null, null, null));
        assertThrows(ShapeException.class, () -> gpu.attentionBackward(q16.gpu(), q16.gpu(), q16.gpu(), 0.25f,
                out16.gpu(), lse.gpu(), out16.gpu(), q16.gpu(), null, null));  // gradQ is q
    }
}
