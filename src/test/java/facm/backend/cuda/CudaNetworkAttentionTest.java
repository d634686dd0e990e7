package facm.backend.cuda;

import facm.backend.cpu.CpuNetworkOps;
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
 * kernels/rope.cu and attention.cu against the CPU reference (CpuNetworkOps, fp64 inside) on random non-zero inputs,
 * T = 1, 37, 256, 1024 and tails of every tile size, dh = 16, 32, 64, 72, 128, B·H up to 2·16, outputs poisoned with
 * NaN first.
 *
 * <p>Tolerances: qkNormRope: fp32 statistics and rotation against fp64, rel 1e-5 of the magnitude of the rotated
 * terms |y₂ₚ·cos| + |y₂ₚ₊₁·sin| (an output that cancels to near zero is not held to a relative bound); v is a copy
 * (bit-exact); rstd rel 1e-5. attention: fp32 scores, exp2f and accumulation against fp64, rel 1e-4 of |O| + mean|v|
 * (O is a weighted mean of v and may cancel to near zero); lse rel 1e-4 of |lse| + 1.
 */
@Tag("gpu")
class CudaNetworkAttentionTest extends GpuCpuPairTestBase {
    private static final float EPS = 1e-6f;

    private NetworkOps gpu;
    private NetworkOps cpu;

    @Override
    void opened() {
        gpu = new CudaNetworkOps(p.gpu);
        cpu = new CpuNetworkOps(p.cpu);
    }

    // ---------------------------------------------------------------- qk-norm + RoPE + head split

    /** RoPE tables [T, dh] as in §3.4 for a square grid when T is a square, else of arbitrary angles. */
    private static float[][] ropeTables(int t, int dh) {
        float[] cos = new float[t * dh], sin = new float[t * dh];
        int side = (int) Math.round(Math.sqrt(t));
        boolean grid = side * side == t;
        int quarter = dh / 4; // frequencies per axis: dh/2 pairs, half of them per axis
        for (int n = 0; n < t; n++) {
            for (int pair = 0; pair < dh / 2; pair++) {
                double angle;
                if (grid && quarter > 0) {
                    int axisPair = pair % Math.max(1, dh / 4);
                    double freq = Math.pow(10_000, -(double) axisPair / quarter);
                    angle = (pair < dh / 4 ? n / side : n % side) * freq;
                } else {
                    angle = 0.37 * n + 1.3 * pair;
                }
                cos[n * dh + 2 * pair] = cos[n * dh + 2 * pair + 1] = (float) Math.cos(angle);
                sin[n * dh + 2 * pair] = sin[n * dh + 2 * pair + 1] = (float) Math.sin(angle);
            }
        }
        return new float[][] {cos, sin};
    }

    private void checkQkNormRope(int b, int t, int heads, int dh, boolean norm, boolean rope, long seed) {
        String what = "B" + b + " T" + t + " H" + heads + " dh" + dh + (norm ? " norm" : "") + (rope ? " rope" : "");
        int width = 3 * heads * dh;
        float[] xv = values(seed, b * t * width, -2f, 2f);
        var qkv = p.upload("qkv", xv, b, t, width);
        var qw = norm ? p.upload("qw", values(seed + 1, dh, 0.5f, 1.5f), dh) : null;
        var kw = norm ? p.upload("kw", values(seed + 2, dh, 0.5f, 1.5f), dh) : null;
        float[][] tables = ropeTables(t, dh);
        var cos = rope ? p.upload("cos", tables[0], t, dh) : null;
        var sin = rope ? p.upload("sin", tables[1], t, dh) : null;
        var q = p.poisoned("q", DType.F32, b, heads, t, dh);
        var k = p.poisoned("k", DType.F32, b, heads, t, dh);
        var v = p.poisoned("v", DType.F32, b, heads, t, dh);
        var rstd = norm ? p.poisoned("rstd", DType.F32, b, t, 2, heads) : null;
        gpu.qkNormRope(qkv.gpu(), heads, qw == null ? null : qw.gpu(), kw == null ? null : kw.gpu(), EPS,
                cos == null ? null : cos.gpu(), sin == null ? null : sin.gpu(), q.gpu(), k.gpu(), v.gpu(),
                rstd == null ? null : rstd.gpu());
        cpu.qkNormRope(qkv.cpu(), heads, qw == null ? null : qw.cpu(), kw == null ? null : kw.cpu(), EPS,
                cos == null ? null : cos.cpu(), sin == null ? null : sin.cpu(), q.cpu(), k.cpu(), v.cpu(),
                rstd == null ? null : rstd.cpu());

        // Tolerance per output element from the magnitudes of its terms: y = x·ρ·w (or x), then the rotation.
        float[] qwv = norm ? p.cpu.download(qw.cpu()) : null, kwv = norm ? p.cpu.download(kw.cpu()) : null;
        float[] tolQ = new float[b * heads * t * dh], tolK = new float[tolQ.length];
        double[] y = new double[dh];
        for (int bi = 0; bi < b; bi++) {
            for (int n = 0; n < t; n++) {
                for (int part = 0; part < 2; part++) {
                    for (int h = 0; h < heads; h++) {
                        int src = (bi * t + n) * width + (part * heads + h) * dh;
                        double ss = 0;
                        for (int j = 0; j < dh; j++) {
                            ss += (double) xv[src + j] * xv[src + j];
                        }
                        double rho = norm ? 1 / Math.sqrt(ss / dh + EPS) : 1;
                        float[] w = part == 0 ? qwv : kwv;
                        for (int j = 0; j < dh; j++) {
                            y[j] = xv[src + j] * rho * (norm ? w[j] : 1);
                        }
                        float[] tol = part == 0 ? tolQ : tolK;
                        int dst = ((bi * heads + h) * t + n) * dh;
                        for (int j = 0; j < dh; j++) {
                            int pairStart = j & ~1;
                            double c = rope ? tables[0][n * dh + pairStart] : 1;
                            double s = rope ? tables[1][n * dh + pairStart] : 0;
                            double terms = Math.abs(y[j] * c) + Math.abs(y[j ^ 1] * s);
                            tol[dst + j] = (float) (1e-5 * terms + 1e-30);
                        }
                    }
                }
            }
        }
        assertWithin("qkNormRope q " + what, p.cpu.download(q.cpu()), p.gpu.download(q.gpu()), tolQ);
        assertWithin("qkNormRope k " + what, p.cpu.download(k.cpu()), p.gpu.download(k.gpu()), tolK);
        assertBitEqual("qkNormRope v " + what, p.cpu.download(v.cpu()), p.gpu.download(v.gpu()));
        if (norm) {
            float[] rc = p.cpu.download(rstd.cpu());
            float[] rtol = new float[rc.length];
            for (int i = 0; i < rc.length; i++) {
                rtol[i] = 1e-5f * Math.abs(rc[i]);
            }
            assertWithin("qkNormRope rstd " + what, rc, p.gpu.download(rstd.gpu()), rtol);
        }
    }

    @Test
    void qkNormRopeMatchesCpu() {
        checkQkNormRope(2, 37, 3, 72, true, true, 100);
        checkQkNormRope(2, 256, 16, 72, true, true, 101); // LightningDiT-XL/1 layout, §3.4 tables
        checkQkNormRope(1, 1, 2, 64, false, true, 102);
        checkQkNormRope(1, 5, 2, 128, true, false, 103);
        checkQkNormRope(1, 3, 1, 16, false, false, 104);
        checkQkNormRope(2, 64, 12, 64, true, true, 105); // B/2 layout
        checkQkNormRope(1, 4, 2, 130, true, true, 106);  // 65 pairs: three pairs on lane 0 (warp-per-head kernel)
        checkQkNormRope(3, 1024, 2, 64, true, true, 107); // token blocks striding over t (grid x < T)
        checkQkNormRope(1, 3, 48, 64, true, true, 108);  // 1152 chunks > 1024 threads: the warp-per-head kernel
    }

    @Test
    void qkNormRopeRejectsOddHeadDim() {
        var qkv = p.upload("qkv", values(1, 3 * 2 * 3 * 5, -1f, 1f), 1, 3, 2 * 3 * 5);
        var q = p.poisoned("q", DType.F32, 1, 2, 3, 5);
        var k = p.poisoned("k", DType.F32, 1, 2, 3, 5);
        var v = p.poisoned("v", DType.F32, 1, 2, 3, 5);
        assertThrows(ShapeException.class, () -> gpu.qkNormRope(qkv.gpu(), 2, null, null, EPS, null, null, q.gpu(),
                k.gpu(), v.gpu(), null));
    }

    // ---------------------------------------------------------------- attention

    private void checkAttention(int b, int heads, int t, int dh, float scale, float range, long seed) {
        String what = "B" + b + " H" + heads + " T" + t + " dh" + dh + " scale " + scale;
        int n = b * heads * t * dh;
        float[] vv = values(seed + 2, n, -1f, 1f);
        var q = p.upload("q", values(seed, n, -range, range), b, heads, t, dh);
        var k = p.upload("k", values(seed + 1, n, -range, range), b, heads, t, dh);
        var v = p.upload("v", vv, b, heads, t, dh);
        var out = p.poisoned("out", DType.F32, b, t, heads * dh);
        var lse = p.poisoned("lse", DType.F32, b, heads, t);
        gpu.attention(q.gpu(), k.gpu(), v.gpu(), scale, out.gpu(), lse.gpu());
        cpu.attention(q.cpu(), k.cpu(), v.cpu(), scale, out.cpu(), lse.cpu());

        double meanAbsV = 0;
        for (float x : vv) {
            meanAbsV += Math.abs(x);
        }
        meanAbsV /= n;
        float[] ref = p.cpu.download(out.cpu());
        float[] tol = new float[ref.length];
        for (int i = 0; i < ref.length; i++) {
            tol[i] = (float) (1e-4 * (Math.abs(ref[i]) + meanAbsV));
        }
        assertWithin("attention out " + what, ref, p.gpu.download(out.gpu()), tol);
        float[] lref = p.cpu.download(lse.cpu());
        float[] ltol = new float[lref.length];
        for (int i = 0; i < lref.length; i++) {
            ltol[i] = 1e-4f * (Math.abs(lref[i]) + 1f);
        }
        assertWithin("attention lse " + what, lref, p.gpu.download(lse.gpu()), ltol);
    }

    @Test
    void attentionSmallAndTailShapes() {
        checkAttention(1, 1, 1, 64, 0.125f, 2f, 200);
        checkAttention(1, 1, 1, 72, 0.11f, 2f, 201);
        checkAttention(2, 3, 37, 72, (float) (1 / Math.sqrt(72)), 2f, 202);
        checkAttention(1, 2, 100, 16, 0.25f, 2f, 203);
        checkAttention(1, 1, 65, 32, 0.2f, 2f, 204);
        checkAttention(2, 1, 33, 128, (float) (1 / Math.sqrt(128)), 2f, 205);
        checkAttention(1, 2, 129, 64, 0.125f, 2f, 206);
    }

    @Test
    void attentionRealisticShapes() {
        checkAttention(2, 16, 256, 72, (float) (1 / Math.sqrt(72)), 2f, 210);  // XL/1
        checkAttention(1, 2, 256, 128, (float) (1 / Math.sqrt(128)), 2f, 211);
        checkAttention(2, 12, 64, 64, 0.125f, 2f, 212);                          // B/2
        checkAttention(1, 2, 1024, 64, 0.125f, 2f, 213);
        checkAttention(2, 16, 1024, 72, (float) (1 / Math.sqrt(72)), 2f, 214);
    }

    @Test
    void attentionWithLargeScoresStaysStable() {
        // Scores with a spread of ~±40: the running max changes often and most exponentials underflow.
        checkAttention(1, 2, 300, 72, 1f, 2f, 220);
        checkAttention(1, 1, 97, 128, 1f, 2f, 221);
    }

    @Test
    void attentionWithoutLse() {
        int b = 1, heads = 2, t = 37, dh = 64;
        int n = b * heads * t * dh;
        var q = p.upload("q", values(230, n, -1f, 1f), b, heads, t, dh);
        var k = p.upload("k", values(231, n, -1f, 1f), b, heads, t, dh);
        var v = p.upload("v", values(232, n, -1f, 1f), b, heads, t, dh);
        var out = p.poisoned("out", DType.F32, b, t, heads * dh);
        gpu.attention(q.gpu(), k.gpu(), v.gpu(), 0.125f, out.gpu(), null);
        cpu.attention(q.cpu(), k.cpu(), v.cpu(), 0.125f, out.cpu(), null);
        float[] ref = p.cpu.download(out.cpu());
        float[] tol = new float[ref.length];
        java.util.Arrays.fill(tol, 1e-4f);
        assertWithin("attention without lse", ref, p.gpu.download(out.gpu()), tol);
    }

    @Test
    void attentionRejectsUnsupportedHeadDimAndBadOut() {
        var q = p.upload("q", values(1, 2 * 5 * 24, -1f, 1f), 1, 2, 5, 24);
        var out = p.poisoned("out", DType.F32, 1, 5, 48);
        assertThrows(ShapeException.class, () -> gpu.attention(q.gpu(), q.gpu(), q.gpu(), 0.2f, out.gpu(), null));
        var q64 = p.upload("q64", values(2, 2 * 5 * 64, -1f, 1f), 1, 2, 5, 64);
        var badOut = p.poisoned("bad", DType.F32, 1, 2, 5, 64);
        assertThrows(ShapeException.class, () -> gpu.attention(q64.gpu(), q64.gpu(), q64.gpu(), 0.2f, badOut.gpu(),
                null));
    }
}
