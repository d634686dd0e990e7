package facm.backend.cpu;

import static facm.backend.cpu.FiniteDifferences.assertBitIdentical;
import static facm.backend.cpu.FiniteDifferences.check;
import static facm.backend.cpu.FiniteDifferences.directional;
import static facm.backend.cpu.FiniteDifferences.toDouble;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.nonZero;
import static facm.backend.cpu.ReferenceData.numel;
import static facm.backend.cpu.ReferenceData.uniform;

import facm.tensor.NetworkOps;
import facm.tensor.Tensor;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * qkNormRopeJvp and attentionJvp of {@link CpuNetworkOps}: primal (and rstd/lse) bit-identical to the forward ops,
 * tangents against float64 central differences of float64 forwards written here (qk-norm and RoPE as separate passes,
 * attention through full score matrices), max-norm relative error below 1e-4, and null tangents as zeros.
 */
class CpuAttentionJvpTest {
    private static final CpuBackend CPU = new CpuBackend(3);
    private static final NetworkOps NET = CPU.network();
    private static final float EPS = 1e-6f;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    private static Tensor poisoned(String name, int... shape) {
        return CPU.upload(name, nans(numel(shape)), shape);
    }

    private static Tensor up(String name, float[] data, int... shape) {
        return CPU.upload(name, data, shape);
    }

    /** {B, T, H, dh}: T = 1, 5, 37; dh 16 and 72. */
    private static final int[][] CASES = {{2, 5, 3, 16}, {1, 1, 2, 72}, {2, 37, 1, 16}};

    /** cos/sin tables [T, dh] with random angles, one per channel pair (stored for both channels). */
    private static float[][] ropeTables(long seed, int t, int dh) {
        float[] angles = uniform(seed, t * dh / 2, -3, 3);
        float[] cos = new float[t * dh], sin = new float[t * dh];
        for (int i = 0; i < t * dh / 2; i++) {
            cos[2 * i] = cos[2 * i + 1] = (float) Math.cos(angles[i]);
            sin[2 * i] = sin[2 * i + 1] = (float) Math.sin(angles[i]);
        }
        return new float[][] {cos, sin};
    }

    /** q, k, v [B,H,T,dh] concatenated, from qkv [B,T,3·H·dh]: RMSNorm (weights non-null) then RoPE (tables). */
    private static double[] qkNormRope64(double[] qkv, double[] qw, double[] kw, float[] cos, float[] sin, int b,
                                         int t, int heads, int dh) {
        int per = b * heads * t * dh;
        double[] out = new double[3 * per];
        for (int n = 0; n < b * t; n++) {
            int batch = n / t, token = n % t;
            for (int part = 0; part < 3; part++) {
                for (int h = 0; h < heads; h++) {
                    int src = n * 3 * heads * dh + (part * heads + h) * dh;
                    int dst = part * per + ((batch * heads + h) * t + token) * dh;
                    double[] x = new double[dh];
                    System.arraycopy(qkv, src, x, 0, dh);
                    double[] w = part == 0 ? qw : part == 1 ? kw : null;
                    if (w != null) {
                        double mean = 0;
                        for (double xi : x) {
                            mean += xi * xi;
                        }
                        double rho = Math.pow(mean / dh + EPS, -0.5);
                        for (int j = 0; j < dh; j++) {
                            x[j] = x[j] * rho * w[j];
                        }
                    }
                    for (int j = 0; j < dh; j += 2) {
                        double c = part == 2 || cos == null ? 1 : cos[token * dh + j];
                        double s = part == 2 || cos == null ? 0 : sin[token * dh + j];
                        out[dst + j] = x[j] * c - x[j + 1] * s;
                        out[dst + j + 1] = x[j + 1] * c + x[j] * s;
                    }
                }
            }
        }
        return out;
    }

    @Test
    void qkNormRopeJvpMatchesForwardAndFiniteDifferences() {
        long seed = 60;
        for (int[] c : CASES) {
            int b = c[0], t = c[1], heads = c[2], dh = c[3];
            for (int variant = 0; variant < 3; variant++) {
                boolean norm = variant != 1, rope = variant != 2;
                int n = b * t * 3 * heads * dh;
                float[] qkv = nonZero(seed++, n), qkvDot = nonZero(seed++, n);
                float[] qw = uniform(seed++, dh, 0.5, 1.5), kw = uniform(seed++, dh, 0.5, 1.5);
                float[][] tables = ropeTables(seed++, t, dh);
                Tensor x = up("qkv", qkv, b, t, 3 * heads * dh), xd = up("qkvDot", qkvDot, b, t, 3 * heads * dh);
                Tensor qwt = norm ? up("qw", qw, dh) : null, kwt = norm ? up("kw", kw, dh) : null;
                Tensor cos = rope ? up("cos", tables[0], t, dh) : null, sin = rope ? up("sin", tables[1], t, dh) : null;
                Tensor[] expected = new Tensor[3], primal = new Tensor[3], tangent = new Tensor[3];
                for (int i = 0; i < 3; i++) {
                    expected[i] = poisoned("expected" + i, b, heads, t, dh);
                    primal[i] = poisoned("primal" + i, b, heads, t, dh);
                    tangent[i] = poisoned("tangent" + i, b, heads, t, dh);
                }
                Tensor expectedRstd = norm ? poisoned("expectedRstd", b, t, 2, heads) : null;
                Tensor rstd = norm ? poisoned("rstd", b, t, 2, heads) : null;
                NET.qkNormRope(x, heads, qwt, kwt, EPS, cos, sin, expected[0], expected[1], expected[2], expectedRstd);
                NET.qkNormRopeJvp(x, xd, heads, qwt, kwt, EPS, cos, sin, primal[0], primal[1], primal[2], tangent[0],
                        tangent[1], tangent[2], rstd);
                String what = "qkNormRopeJvp " + b + "x" + t + " H=" + heads + " dh=" + dh + (norm ? " norm" : "")
                        + (rope ? " rope" : "");
                for (int i = 0; i < 3; i++) {
                    assertBitIdentical(what + " primal " + "qkv".charAt(i), CPU.download(expected[i]),
                            CPU.download(primal[i]));
                }
                if (norm) {
                    assertBitIdentical(what + " rstd", CPU.download(expectedRstd), CPU.download(rstd));
                }
                float[] cosT = rope ? tables[0] : null, sinT = rope ? tables[1] : null;
                double[] fd = directional(in -> qkNormRope64(in[0], norm ? in[1] : null, norm ? in[2] : null, cosT,
                        sinT, b, t, heads, dh), new double[][] {toDouble(qkv), toDouble(qw), toDouble(kw)},
                        new double[][] {toDouble(qkvDot), null, null});
                int per = b * heads * t * dh;
                float[] all = new float[3 * per];
                for (int i = 0; i < 3; i++) {
                    System.arraycopy(CPU.download(tangent[i]), 0, all, i * per, per);
                }
                check(what + " tangent (q, k, v)", fd, all);
                NET.qkNormRopeJvp(x, null, heads, qwt, kwt, EPS, cos, sin, primal[0], primal[1], primal[2],
                        tangent[0], tangent[1], tangent[2], null);
                for (int i = 0; i < 3; i++) {
                    assertBitIdentical(what + " null qkvDot", new float[per], CPU.download(tangent[i]));
                }
            }
        }
    }

    /** out [B,T,H·dh] = softmax(scale·q kᵀ) v per head, through the full score matrix. */
    private static double[] attention64(double[] q, double[] k, double[] v, double scale, int b, int heads, int t,
                                        int dh) {
        double[] out = new double[b * t * heads * dh];
        for (int bh = 0; bh < b * heads; bh++) {
            double[][] p = new double[t][t];
            for (int i = 0; i < t; i++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < t; j++) {
                    double s = 0;
                    for (int d = 0; d < dh; d++) {
                        s += q[(bh * t + i) * dh + d] * k[(bh * t + j) * dh + d];
                    }
                    p[i][j] = s * scale;
                    max = Math.max(max, p[i][j]);
                }
                double sum = 0;
                for (int j = 0; j < t; j++) {
                    p[i][j] = Math.exp(p[i][j] - max);
                    sum += p[i][j];
                }
                int batch = bh / heads, h = bh % heads;
                for (int d = 0; d < dh; d++) {
                    double o = 0;
                    for (int j = 0; j < t; j++) {
                        o += p[i][j] / sum * v[(bh * t + j) * dh + d];
                    }
                    out[((batch * t + i) * heads + h) * dh + d] = o;
                }
            }
        }
        return out;
    }

    @Test
    void attentionJvpMatchesForwardAndFiniteDifferences() {
        long seed = 80;
        for (int[] c : CASES) {
            int b = c[0], t = c[1], heads = c[2], dh = c[3];
            int n = b * heads * t * dh;
            float scale = (float) (1 / Math.sqrt(dh));
            float[] q = uniform(seed++, n, -2, 2), k = uniform(seed++, n, -2, 2), v = nonZero(seed++, n);
            float[] qDot = nonZero(seed++, n), kDot = nonZero(seed++, n), vDot = nonZero(seed++, n);
            Tensor qt = up("q", q, b, heads, t, dh), kt = up("k", k, b, heads, t, dh), vt = up("v", v, b, heads, t, dh);
            Tensor qd = up("qDot", qDot, b, heads, t, dh), kd = up("kDot", kDot, b, heads, t, dh);
            Tensor vd = up("vDot", vDot, b, heads, t, dh);
            Tensor expected = poisoned("expected", b, t, heads * dh), expectedLse = poisoned("expectedLse", b, heads, t);
            Tensor out = poisoned("out", b, t, heads * dh), outDot = poisoned("outDot", b, t, heads * dh);
            Tensor lse = poisoned("lse", b, heads, t);
            NET.attention(qt, kt, vt, scale, expected, expectedLse);
            NET.attentionJvp(qt, kt, vt, qd, kd, vd, scale, out, outDot, lse);
            String what = "attentionJvp " + b + "x" + t + " H=" + heads + " dh=" + dh;
            assertBitIdentical(what + " primal", CPU.download(expected), CPU.download(out));
            assertBitIdentical(what + " lse", CPU.download(expectedLse), CPU.download(lse));
            FiniteDifferences.Forward f = in -> attention64(in[0], in[1], in[2], scale, b, heads, t, dh);
            double[][] inputs = {toDouble(q), toDouble(k), toDouble(v)};
            double[][] dirs = {toDouble(qDot), toDouble(kDot), toDouble(vDot)};
            check(what + " tangent (q, k, v)", directional(f, inputs, dirs), CPU.download(outDot));
            // One tangent input at a time (the others null); q and k alone have a zero tangent when T = 1.
            for (int only = 0; only < 3; only++) {
                double[][] oneDir = new double[3][];
                oneDir[only] = dirs[only];
                NET.attentionJvp(qt, kt, vt, only == 0 ? qd : null, only == 1 ? kd : null, only == 2 ? vd : null,
                        scale, out, outDot, null);
                check(what + " tangent (" + "qkv".charAt(only) + " only)", directional(f, inputs, oneDir),
                        CPU.download(outDot));
                assertBitIdentical(what + " primal (" + "qkv".charAt(only) + " only)", CPU.download(expected),
                        CPU.download(out));
            }
            NET.attentionJvp(qt, kt, vt, null, null, null, scale, out, outDot, null);
            assertBitIdentical(what + " null tangents", new float[n], CPU.download(outDot));
        }
    }
}
