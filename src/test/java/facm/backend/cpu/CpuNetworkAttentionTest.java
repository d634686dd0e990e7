package facm.backend.cpu;

import static facm.backend.cpu.CpuNetworkOpsTest.assertClose;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.nonZero;
import static facm.backend.cpu.ReferenceData.numel;
import static facm.backend.cpu.ReferenceData.uniform;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * qkNormRope and attention of {@link CpuNetworkOps} against float64 references written differently here: qk-norm and
 * RoPE as separate passes with 2×2 rotation matrices, attention through full score matrices. Plus the RoPE table of
 * facm-spec.md §3.4 checked by hand and by its relative-position property.
 */
class CpuNetworkAttentionTest {
    private static final CpuBackend CPU = new CpuBackend(3);
    private static final NetworkOps NET = new CpuNetworkOps(CPU);
    private static final float EPS = 1e-6f;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    private static Tensor poisoned(String name, int... shape) {
        return CPU.upload(name, nans(numel(shape)), shape);
    }

    /** {B, T, H, dh}: a single token, odd T, and the head sizes of the model sizes (64, 72) and a small one. */
    private static final int[][] CASES = {{2, 37, 3, 16}, {1, 1, 2, 64}, {2, 9, 2, 72}};

    /**
     * RoPE tables of §3.4 for a gh×gw grid, dh channels: φ_m = 10000^(−m/(dh/4)) for m < dh/4; pair p < dh/4 turns by
     * i·φ_p (row), pair p ≥ dh/4 by j·φ_(p−dh/4) (column); each angle stored for both channels of its pair.
     */
    static float[][] ropeTables(int gh, int gw, int dh) {
        int quarter = dh / 4;
        float[] cos = new float[gh * gw * dh], sin = new float[gh * gw * dh];
        for (int i = 0; i < gh; i++) {
            for (int j = 0; j < gw; j++) {
                int n = i * gw + j;
                for (int p = 0; p < dh / 2; p++) {
                    double angle = p < quarter ? i * Math.pow(10000, -(double) p / quarter)
                            : j * Math.pow(10000, -(double) (p - quarter) / quarter);
                    cos[n * dh + 2 * p] = cos[n * dh + 2 * p + 1] = (float) Math.cos(angle);
                    sin[n * dh + 2 * p] = sin[n * dh + 2 * p + 1] = (float) Math.sin(angle);
                }
            }
        }
        return new float[][] {cos, sin};
    }

    /** Result of the reference: q, k, v [B,H,T,dh] and rstd [B,T,2,H]. */
    private record Prepared(double[] q, double[] k, double[] v, double[] rstd) {
    }

    private static Prepared prepareReference(float[] qkv, int b, int t, int h, int dh, float[] qw, float[] kw,
                                             float[] cos, float[] sin) {
        double[][] parts = new double[3][b * h * t * dh];
        double[] rstd = new double[b * t * 2 * h];
        // Pass 1: split into head tensors.
        for (int i = 0; i < qkv.length; i++) {
            int d = i % dh, head = (i / dh) % h, part = (i / (dh * h)) % 3, token = (i / (3 * h * dh)) % t;
            int batch = i / (3 * h * dh * t);
            parts[part][((batch * h + head) * t + token) * dh + d] = qkv[i];
        }
        for (int part = 0; part < 2; part++) {
            double[] x = parts[part];
            float[] w = part == 0 ? qw : kw;
            for (int vec = 0; vec < b * h * t; vec++) {
                int token = vec % t, head = (vec / t) % h, batch = vec / (t * h);
                // Pass 2: RMSNorm over dh.
                if (w != null) {
                    double mean = 0;
                    for (int d = 0; d < dh; d++) {
                        mean += x[vec * dh + d] * x[vec * dh + d] / dh;
                    }
                    double rho = 1 / Math.sqrt(mean + EPS);
                    rstd[((batch * t + token) * 2 + part) * h + head] = rho;
                    for (int d = 0; d < dh; d++) {
                        x[vec * dh + d] *= rho * w[d];
                    }
                }
                // Pass 3: rotate each pair by [[c, −s], [s, c]].
                if (cos != null) {
                    for (int p = 0; p < dh / 2; p++) {
                        double c = cos[token * dh + 2 * p], s = sin[token * dh + 2 * p];
                        double[][] rot = {{c, -s}, {s, c}};
                        double x0 = x[vec * dh + 2 * p], x1 = x[vec * dh + 2 * p + 1];
                        x[vec * dh + 2 * p] = rot[0][0] * x0 + rot[0][1] * x1;
                        x[vec * dh + 2 * p + 1] = rot[1][0] * x0 + rot[1][1] * x1;
                    }
                }
            }
        }
        return new Prepared(parts[0], parts[1], parts[2], rstd);
    }

    private record Outputs(float[] q, float[] k, float[] v, float[] rstd) {
    }

    private static Outputs runQkNormRope(NetworkOps net, float[] qkv, int b, int t, int h, int dh, float[] qw,
                                         float[] kw, float[] cos, float[] sin) {
        Tensor q = poisoned("q", b, h, t, dh), k = poisoned("k", b, h, t, dh), v = poisoned("v", b, h, t, dh);
        Tensor rstd = qw == null ? null : poisoned("rstd", b, t, 2, h);
        net.qkNormRope(CPU.upload("qkv", qkv, b, t, 3 * h * dh), h,
                qw == null ? null : CPU.upload("qw", qw, dh), kw == null ? null : CPU.upload("kw", kw, dh), EPS,
                cos == null ? null : CPU.upload("cos", cos, t, dh), sin == null ? null : CPU.upload("sin", sin, t, dh),
                q, k, v, rstd);
        return new Outputs(CPU.download(q), CPU.download(k), CPU.download(v), rstd == null ? null : CPU.download(rstd));
    }

    @Test
    void qkNormRopeMatchesFloat64WithEveryStepOnOrOff() {
        long seed = 1000;
        for (int[] c : CASES) {
            int b = c[0], t = c[1], h = c[2], dh = c[3];
            float[] qkv = nonZero(seed++, b * t * 3 * h * dh);
            float[] qw = nonZero(seed++, dh), kw = nonZero(seed++, dh);
            // Random angles (not a grid) so every pair differs. The contract reads entry (token, 2p) for both
            // channels of a pair; NaN in the odd entries makes any read of them fail the comparison.
            float[] angles = uniform(seed++, t * dh / 2, -7, 7);
            float[] cos = new float[t * dh], sin = new float[t * dh];
            for (int i = 0; i < angles.length; i++) {
                cos[2 * i] = (float) Math.cos(angles[i]);
                sin[2 * i] = (float) Math.sin(angles[i]);
                cos[2 * i + 1] = sin[2 * i + 1] = Float.NaN;
            }
            for (int mode = 0; mode < 4; mode++) {
                boolean norm = (mode & 1) != 0, rope = (mode & 2) != 0;
                String what = "qkNormRope " + Arrays.toString(c) + (norm ? " norm" : "") + (rope ? " rope" : "");
                Prepared ref = prepareReference(qkv, b, t, h, dh, norm ? qw : null, norm ? kw : null,
                        rope ? cos : null, rope ? sin : null);
                Outputs got = runQkNormRope(NET, qkv, b, t, h, dh, norm ? qw : null, norm ? kw : null,
                        rope ? cos : null, rope ? sin : null);
                assertClose(what + " q", ref.q(), got.q(), 1, 1e-12);
                assertClose(what + " k", ref.k(), got.k(), 1, 1e-12);
                assertClose(what + " v", ref.v(), got.v(), 0, 0);
                if (norm) {
                    assertClose(what + " rstd", ref.rstd(), got.rstd(), 1, 0);
                }
            }
        }
    }

    @Test
    void withoutWeightsAndTablesQkNormRopeIsASplitIntoHeads() {
        int b = 2, t = 3, h = 2, dh = 4;
        float[] qkv = new float[b * t * 3 * h * dh];
        for (int i = 0; i < qkv.length; i++) {
            qkv[i] = i;
        }
        Outputs got = runQkNormRope(NET, qkv, b, t, h, dh, null, null, null, null);
        // q[b=1, h=1, t=2, d=3] comes from token (1, 2), part q, head 1, channel 3.
        int src = (1 * t + 2) * 3 * h * dh + (0 * h + 1) * dh + 3;
        assertEquals(src, got.q()[((1 * h + 1) * t + 2) * dh + 3]);
        assertEquals(src + h * dh, got.k()[((1 * h + 1) * t + 2) * dh + 3]);
        assertEquals(src + 2 * h * dh, got.v()[((1 * h + 1) * t + 2) * dh + 3]);
        assertEquals(0f, got.q()[0]);
    }

    @Test
    void ropeTableOfTheSpecTurnsPairsByRowAndColumnAngles() {
        int gh = 3, gw = 4, t = gh * gw, dh = 16, quarter = dh / 4;
        float[][] tables = ropeTables(gh, gw, dh);
        // Every pair (1, 0): the rotated pair is (cos θ, sin θ), so the output shows the angle itself.
        float[] qkv = new float[t * 3 * dh];
        for (int n = 0; n < t; n++) {
            for (int part = 0; part < 3; part++) {
                for (int p = 0; p < dh / 2; p++) {
                    qkv[(n * 3 + part) * dh + 2 * p] = 1f;
                }
            }
        }
        Outputs got = runQkNormRope(NET, qkv, 1, t, 1, dh, null, null, tables[0], tables[1]);
        int i = 2, j = 3, n = i * gw + j;
        float[] token = Arrays.copyOfRange(got.q(), n * dh, (n + 1) * dh);
        double phi1 = Math.pow(10000, -1.0 / quarter);
        assertEquals(Math.cos(2), token[0], 1e-7, "pair 0 turns by the row index i = 2");
        assertEquals(Math.sin(2), token[1], 1e-7);
        assertEquals(Math.cos(2 * phi1), token[2], 1e-7, "pair 1 turns by i·φ_1");
        assertEquals(Math.sin(2 * phi1), token[3], 1e-7);
        assertEquals(Math.cos(3), token[2 * quarter], 1e-7, "pair dh/4 turns by the column index j = 3");
        assertEquals(Math.sin(3), token[2 * quarter + 1], 1e-7);
        assertEquals(Math.cos(3 * phi1), token[2 * quarter + 2], 1e-7, "pair dh/4 + 1 turns by j·φ_1");
        // Token (0,0) is not turned at all; k gets the same rotation as q.
        float[] identity = new float[dh];
        for (int p = 0; p < dh / 2; p++) {
            identity[2 * p] = 1f;
        }
        assertArrayEquals(identity, Arrays.copyOfRange(got.q(), 0, dh));
        assertArrayEquals(got.q(), got.k());
    }

    @Test
    void ropeScoresDependOnlyOnTheRelativePosition() {
        int gh = 4, gw = 5, t = gh * gw, dh = 16;
        float[][] tables = ropeTables(gh, gw, dh);
        float[] qContent = nonZero(1100, dh), kContent = nonZero(1101, dh);
        float[] qkv = new float[t * 3 * dh];
        for (int n = 0; n < t; n++) {
            System.arraycopy(qContent, 0, qkv, n * 3 * dh, dh);
            System.arraycopy(kContent, 0, qkv, (n * 3 + 1) * dh, dh);
        }
        Outputs got = runQkNormRope(NET, qkv, 1, t, 1, dh, null, null, tables[0], tables[1]);
        int[][] pairsWithOffsetOneOne = {{1, 1, 0, 0}, {3, 4, 2, 3}, {2, 2, 1, 1}};
        double first = Double.NaN;
        for (int[] pos : pairsWithOffsetOneOne) {
            int qi = pos[0] * gw + pos[1], ki = pos[2] * gw + pos[3];
            double dot = 0;
            for (int d = 0; d < dh; d++) {
                dot += (double) got.q()[qi * dh + d] * got.k()[ki * dh + d];
            }
            if (Double.isNaN(first)) {
                first = dot;
            } else {
                assertEquals(first, dot, 1e-5, "score at offset (1,1) from " + Arrays.toString(pos));
            }
        }
    }

    @Test
    void qkNormRopeRejectsHalfGivenOptionsAndBadShapes() {
        int b = 1, t = 3, h = 2, dh = 4;
        Tensor qkv = poisoned("qkv", b, t, 3 * h * dh);
        Tensor w = poisoned("w", dh);
        IllegalArgumentException halfNorm = assertThrows(IllegalArgumentException.class, () -> NET.qkNormRope(qkv, h,
                w, null, EPS, null, null, poisoned("q", b, h, t, dh), poisoned("k", b, h, t, dh),
                poisoned("v", b, h, t, dh), null));
        assertTrue(halfNorm.getMessage().contains("kWeight"), halfNorm.getMessage());
        assertThrows(IllegalArgumentException.class, () -> NET.qkNormRope(qkv, h, null, null, EPS, null, null,
                poisoned("q", b, h, t, dh), poisoned("k", b, h, t, dh), poisoned("v", b, h, t, dh),
                poisoned("rstd", b, t, 2, h)), "rstd without qk-norm");
        ShapeException wrongQ = assertThrows(ShapeException.class, () -> NET.qkNormRope(qkv, h, null, null, EPS,
                null, null, poisoned("q", b, t, h, dh), poisoned("k", b, h, t, dh), poisoned("v", b, h, t, dh), null));
        assertTrue(wrongQ.getMessage().startsWith("qkNormRope: q"), wrongQ.getMessage());
        ShapeException heads = assertThrows(ShapeException.class, () -> NET.qkNormRope(qkv, 5, null, null, EPS,
                null, null, poisoned("q", b, h, t, dh), poisoned("k", b, h, t, dh), poisoned("v", b, h, t, dh), null));
        assertTrue(heads.getMessage().contains("heads = 5"), heads.getMessage());
        ShapeException table = assertThrows(ShapeException.class, () -> NET.qkNormRope(qkv, h, null, null, EPS,
                poisoned("cos", t + 1, dh), poisoned("sin", t + 1, dh), poisoned("q", b, h, t, dh),
                poisoned("k", b, h, t, dh), poisoned("v", b, h, t, dh), null));
        assertTrue(table.getMessage().contains("ropeCos"), table.getMessage());
        Tensor odd = poisoned("qkv", b, t, 3 * h * 3);
        ShapeException oddDh = assertThrows(ShapeException.class, () -> NET.qkNormRope(odd, h, null, null, EPS,
                poisoned("cos", t, 3), poisoned("sin", t, 3), poisoned("q", b, h, t, 3), poisoned("k", b, h, t, 3),
                poisoned("v", b, h, t, 3), null));
        assertTrue(oddDh.getMessage().contains("even"), oddDh.getMessage());
    }

    // ---------------------------------------------------------------- attention

    /** O and lse through full score matrices: S = scale·Q·Kᵀ, P = softmax rows of S, O = P·V. */
    private static double[][] attentionReference(float[] q, float[] k, float[] v, int b, int h, int t, int dh,
                                                 double scale) {
        double[] out = new double[b * t * h * dh];
        double[] lse = new double[b * h * t];
        for (int bh = 0; bh < b * h; bh++) {
            int base = bh * t * dh;
            double[][] s = new double[t][t];
            for (int i = 0; i < t; i++) {
                for (int j = 0; j < t; j++) {
                    for (int d = 0; d < dh; d++) {
                        s[i][j] += (double) q[base + i * dh + d] * k[base + j * dh + d];
                    }
                    s[i][j] *= scale;
                }
            }
            double[][] p = new double[t][t];
            for (int i = 0; i < t; i++) {
                double max = Arrays.stream(s[i]).max().orElseThrow();
                double sum = 0;
                for (int j = 0; j < t; j++) {
                    p[i][j] = Math.exp(s[i][j] - max);
                    sum += p[i][j];
                }
                for (int j = 0; j < t; j++) {
                    p[i][j] /= sum;
                }
                lse[bh * t + i] = max + Math.log(sum);
            }
            int batch = bh / h, head = bh % h;
            for (int d = 0; d < dh; d++) {
                for (int i = 0; i < t; i++) {
                    double o = 0;
                    for (int j = 0; j < t; j++) {
                        o += p[i][j] * v[base + j * dh + d];
                    }
                    out[((batch * t + i) * h + head) * dh + d] = o;
                }
            }
        }
        return new double[][] {out, lse};
    }

    private static float[][] runAttention(NetworkOps net, float[] q, float[] k, float[] v, int b, int h, int t,
                                          int dh, float scale) {
        Tensor out = poisoned("out", b, t, h * dh);
        Tensor lse = poisoned("lse", b, h, t);
        net.attention(CPU.upload("q", q, b, h, t, dh), CPU.upload("k", k, b, h, t, dh),
                CPU.upload("v", v, b, h, t, dh), scale, out, lse);
        return new float[][] {CPU.download(out), CPU.download(lse)};
    }

    @Test
    void attentionMatchesFullScoreMatrices() {
        long seed = 1200;
        for (int[] c : CASES) {
            int b = c[0], t = c[1], h = c[2], dh = c[3];
            int n = b * h * t * dh;
            float[] q = nonZero(seed++, n), k = nonZero(seed++, n), v = nonZero(seed++, n);
            // The model's scale, and a large one that makes the softmax nearly one-hot (stability).
            for (float scale : new float[] {(float) (1 / Math.sqrt(dh)), 3f}) {
                String what = "attention " + Arrays.toString(c) + " scale " + scale;
                double[][] ref = attentionReference(q, k, v, b, h, t, dh, scale);
                float[][] got = runAttention(NET, q, k, v, b, h, t, dh, scale);
                assertClose(what + " out", ref[0], got[0], 1, 1e-12);
                assertClose(what + " lse", ref[1], got[1], 1, 1e-12);
            }
        }
    }

    @Test
    void attentionHandCheckedCases() {
        // Identical keys: uniform weights, so each output is the mean of v and lse = score + ln T.
        float[] q = {1f, 2f, -1f, 0.5f, 0f, 3f};
        float[] k = {0.5f, 1f, 0.5f, 1f, 0.5f, 1f};
        float[] v = {1f, 10f, 2f, 20f, 6f, 60f};
        float[][] got = runAttention(NET, q, k, v, 1, 1, 3, 2, 0.5f);
        assertArrayEquals(new float[] {3f, 30f, 3f, 30f, 3f, 30f}, got[0], 1e-6f);
        double[] scores = {0.5 * (0.5 + 2), 0.5 * (-0.5 + 0.5), 0.5 * 3};
        for (int i = 0; i < 3; i++) {
            assertEquals(scores[i] + Math.log(3), got[1][i], 1e-6, "lse row " + i);
        }
        // One token: the output is v and lse is the score.
        float[][] single = runAttention(NET, new float[] {2f, -1f}, new float[] {3f, 4f}, new float[] {7f, -8f},
                1, 1, 1, 2, 0.25f);
        assertArrayEquals(new float[] {7f, -8f}, single[0]);
        assertEquals(0.25f * (6f - 4f), single[1][0], 0f);
    }

    @Test
    void resultsDoNotDependOnTheThreadCount() {
        int b = 2, t = 37, h = 3, dh = 72, n = b * h * t * dh;
        float[] q = nonZero(1300, n), k = nonZero(1301, n), v = nonZero(1302, n);
        float[] qkv = nonZero(1303, b * t * 3 * h * dh), w = nonZero(1304, dh);
        float[][] tables = ropeTables(37, 1, dh);
        try (CpuBackend single = new CpuBackend(1)) {
            NetworkOps one = new CpuNetworkOps(single);
            float[][] many = runAttention(NET, q, k, v, b, h, t, dh, 0.2f);
            Tensor out = single.upload("out", new float[n], b, t, h * dh);
            Tensor lse = single.upload("lse", new float[b * h * t], b, h, t);
            one.attention(single.upload("q", q, b, h, t, dh), single.upload("k", k, b, h, t, dh),
                    single.upload("v", v, b, h, t, dh), 0.2f, out, lse);
            assertArrayEquals(many[0], single.download(out));
            assertArrayEquals(many[1], single.download(lse));

            Outputs threaded = runQkNormRope(NET, qkv, b, t, h, dh, w, w, tables[0], tables[1]);
            Tensor q1 = single.empty("q", facm.tensor.DType.F32, b, h, t, dh);
            Tensor k1 = single.empty("k", facm.tensor.DType.F32, b, h, t, dh);
            Tensor v1 = single.empty("v", facm.tensor.DType.F32, b, h, t, dh);
            one.qkNormRope(single.upload("qkv", qkv, b, t, 3 * h * dh), h, single.upload("w", w, dh),
                    single.upload("w", w, dh), EPS, single.upload("cos", tables[0], t, dh),
                    single.upload("sin", tables[1], t, dh), q1, k1, v1, null);
            assertArrayEquals(threaded.q(), single.download(q1));
            assertArrayEquals(threaded.k(), single.download(k1));
        }
    }

    @Test
    void attentionRejectsBadShapesAndAliasing() {
        int b = 1, h = 2, t = 3, dh = 4;
        Tensor q = poisoned("q", b, h, t, dh), k = poisoned("k", b, h, t, dh), v = poisoned("v", b, h, t, dh);
        ShapeException kv = assertThrows(ShapeException.class, () -> NET.attention(q, poisoned("k", b, h, t + 1, dh),
                v, 0.5f, poisoned("out", b, t, h * dh), null));
        assertTrue(kv.getMessage().startsWith("attention (k vs q)"), kv.getMessage());
        ShapeException out = assertThrows(ShapeException.class, () -> NET.attention(q, k, v, 0.5f,
                poisoned("out", b, h, t * dh), null));
        assertTrue(out.getMessage().contains("out [B, T, H·dh]"), out.getMessage());
        ShapeException lse = assertThrows(ShapeException.class, () -> NET.attention(q, k, v, 0.5f,
                poisoned("out", b, t, h * dh), poisoned("lse", b, t, h)));
        assertTrue(lse.getMessage().contains("lse"), lse.getMessage());
        ShapeException alias = assertThrows(ShapeException.class, () -> NET.attention(q, k, v, 0.5f,
                v.reshape(b, t, h * dh), null));
        assertTrue(alias.getMessage().contains("share storage"), alias.getMessage());
    }
}
