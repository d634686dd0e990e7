package facm.backend.cpu;

import static facm.backend.cpu.FiniteDifferences.assertAccumulatedTwice;
import static facm.backend.cpu.FiniteDifferences.assertBitIdentical;
import static facm.backend.cpu.FiniteDifferences.check;
import static facm.backend.cpu.FiniteDifferences.checkForward;
import static facm.backend.cpu.FiniteDifferences.coordinates;
import static facm.backend.cpu.FiniteDifferences.gradient;
import static facm.backend.cpu.FiniteDifferences.toDouble;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.nonZero;
import static facm.backend.cpu.ReferenceData.numel;
import static facm.backend.cpu.ReferenceData.uniform;
import static org.junit.jupiter.api.Assertions.assertThrows;

import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Backward of qkNormRope (qk-norm and RoPE each on and off) and of softmax attention (recomputed from the saved lse)
 * against central finite differences of float64 forwards written here: RoPE as a complex multiplication, attention
 * through full score matrices ({@link FiniteDifferences}: max-norm relative error below 1e-4).
 */
class CpuAttentionBackwardTest {
    private static final CpuBackend CPU = new CpuBackend(3);
    private static final NetworkOps NET = CPU.network();
    private static final float EPS = 1e-6f;
    private static final int COORDS = 200;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    private static Tensor poisoned(String name, int... shape) {
        return CPU.upload(name, nans(numel(shape)), shape);
    }

    // ---------------------------------------------------------------- qkNormRope

    /** Random RoPE tables [T, dh]: one angle per (token, pair), stored for both channels of the pair. */
    private static float[][] randomRope(long seed, int t, int dh) {
        float[] angles = uniform(seed, t * dh / 2, -Math.PI, Math.PI);
        float[] cos = new float[t * dh], sin = new float[t * dh];
        for (int i = 0; i < angles.length; i++) {
            cos[2 * i] = cos[2 * i + 1] = (float) Math.cos(angles[i]);
            sin[2 * i] = sin[2 * i + 1] = (float) Math.sin(angles[i]);
        }
        return new float[][] {cos, sin};
    }

    /** [q | k | v], each [B,H,T,dh]; in = {qkv, qWeight, kWeight} (weights null: no qk-norm); rope null: no RoPE. */
    private static double[] qkNormRope64(double[][] in, float[][] rope, int b, int t, int h, int dh) {
        double[] qkv = in[0];
        int head = b * h * t * dh;
        double[] out = new double[3 * head];
        for (int i = 0; i < out.length; i++) {
            int part = i / head, d = i % dh, tok = (i / dh) % t, hh = (i / (dh * t)) % h;
            int bb = (i % head) / (dh * t * h);
            int src = (bb * t + tok) * 3 * h * dh + (part * h + hh) * dh;
            double[] w = part == 0 ? in[1] : part == 1 ? in[2] : null;
            if (w == null) {
                out[i] = rope == null || part == 2 ? qkv[src + d] : rotated(qkv, src, d, null, 1, rope, tok * dh);
                continue;
            }
            double meanSquare = 0;
            for (int j = 0; j < dh; j++) {
                meanSquare += qkv[src + j] * qkv[src + j] / dh;
            }
            double rho = Math.pow(meanSquare + EPS, -0.5);
            out[i] = rope == null ? qkv[src + d] * rho * w[d] : rotated(qkv, src, d, w, rho, rope, tok * dh);
        }
        return out;
    }

    /** Channel d of (x0 + i·x1)·e^{iθ} for the pair holding d, with x = qkv·ρ·w (w null: x = qkv). */
    private static double rotated(double[] qkv, int src, int d, double[] w, double rho, float[][] rope, int row) {
        int p = d & ~1;
        double x0 = qkv[src + p] * rho * (w == null ? 1 : w[p]);
        double x1 = qkv[src + p + 1] * rho * (w == null ? 1 : w[p + 1]);
        double c = rope[0][row + p], s = rope[1][row + p];
        return d == p ? x0 * c - x1 * s : x0 * s + x1 * c;
    }

    /** {B, T, H, dh}: a single token, odd T, the head size of the XL models (72). */
    private static final int[][] QKV_CASES = {{1, 5, 2, 16}, {2, 1, 3, 16}, {1, 3, 2, 72}, {2, 37, 1, 16}};

    @Test
    void qkNormRopeBackwardMatchesFiniteDifferences() {
        long seed = 500;
        for (int[] c : QKV_CASES) {
            for (int variant = 0; variant < 4; variant++) {
                boolean norm = (variant & 1) == 0, rope = (variant & 2) == 0;
                checkQkNormRope(c, norm, rope, seed);
                seed += 10;
            }
        }
    }

    private static void checkQkNormRope(int[] c, boolean norm, boolean rope, long seed) {
        int b = c[0], t = c[1], h = c[2], dh = c[3];
        String name = "qkNormRopeBackward " + Arrays.toString(c) + (norm ? " norm" : "") + (rope ? " rope" : "");
        int[] heads = {b, h, t, dh};
        int headSize = numel(heads);
        float[] qkv = nonZero(seed, b * t * 3 * h * dh), r = nonZero(seed + 1, 3 * headSize);
        float[] qw = norm ? nonZero(seed + 2, dh) : null, kw = norm ? nonZero(seed + 3, dh) : null;
        float[][] tables = rope ? randomRope(seed + 4, t, dh) : null;
        Tensor qkvT = CPU.upload("qkv", qkv, b, t, 3 * h * dh);
        Tensor qwT = norm ? CPU.upload("qw", qw, dh) : null, kwT = norm ? CPU.upload("kw", kw, dh) : null;
        Tensor cos = rope ? CPU.upload("cos", tables[0], t, dh) : null;
        Tensor sin = rope ? CPU.upload("sin", tables[1], t, dh) : null;
        Tensor q = poisoned("q", heads), k = poisoned("k", heads), v = poisoned("v", heads);
        Tensor rstd = norm ? poisoned("rstd", b, t, 2, h) : null;
        NET.qkNormRope(qkvT, h, qwT, kwT, EPS, cos, sin, q, k, v, rstd);
        double[][] in = {toDouble(qkv), norm ? toDouble(qw) : null, norm ? toDouble(kw) : null};
        FiniteDifferences.Forward f = x -> qkNormRope64(x, tables, b, t, h, dh);
        float[] cpuOut = new float[3 * headSize];
        System.arraycopy(CPU.download(q), 0, cpuOut, 0, headSize);
        System.arraycopy(CPU.download(k), 0, cpuOut, headSize, headSize);
        System.arraycopy(CPU.download(v), 0, cpuOut, 2 * headSize, headSize);
        checkForward(name, f.apply(in), cpuOut);

        Tensor gq = CPU.upload("gradQ", Arrays.copyOfRange(r, 0, headSize), heads);
        Tensor gk = CPU.upload("gradK", Arrays.copyOfRange(r, headSize, 2 * headSize), heads);
        Tensor gv = CPU.upload("gradV", Arrays.copyOfRange(r, 2 * headSize, 3 * headSize), heads);
        Tensor gradQkv = poisoned("gradQkv", b, t, 3 * h * dh);
        Tensor gradQw = norm ? CPU.zeros(DType.F32, dh) : null, gradKw = norm ? CPU.zeros(DType.F32, dh) : null;
        NET.qkNormRopeBackward(qkvT, h, qwT, kwT, EPS, cos, sin, rstd, gq, gk, gv, gradQkv, gradQw, gradKw);
        double[] rd = toDouble(r);
        int[] xs = coordinates(qkv.length, COORDS, seed);
        check(name + " gradQkv", gradient(f, in, 0, rd, xs), CPU.download(gradQkv), xs);
        if (!norm) {
            return;
        }
        float[] onceQ = CPU.download(gradQw), onceK = CPU.download(gradKw);
        check(name + " gradQWeight", gradient(f, in, 1, rd, coordinates(dh, dh, 0)), onceQ);
        check(name + " gradKWeight", gradient(f, in, 2, rd, coordinates(dh, dh, 0)), onceK);
        float[] startQ = nonZero(seed + 5, dh), startK = nonZero(seed + 6, dh);
        Tensor accQ = CPU.upload("gradQw", startQ, dh), accK = CPU.upload("gradKw", startK, dh);
        for (int call = 0; call < 2; call++) {
            NET.qkNormRopeBackward(qkvT, h, qwT, kwT, EPS, cos, sin, rstd, gq, gk, gv, null, accQ, accK);
        }
        assertAccumulatedTwice(name + " gradQWeight", startQ, onceQ, CPU.download(accQ));
        assertAccumulatedTwice(name + " gradKWeight", startK, onceK, CPU.download(accK));
    }

    @Test
    void qkNormWeightGradientsDoNotDependOnTheThreadCount() {
        int b = 2, t = 100, h = 3, dh = 16;
        float[] qkv = nonZero(600, b * t * 3 * h * dh), g = nonZero(601, 3 * b * h * t * dh);
        float[] qw = nonZero(602, dh), kw = nonZero(603, dh);
        float[][] tables = randomRope(604, t, dh);
        float[][][] results = new float[2][][];
        int[] threads = {1, 3};
        for (int n = 0; n < 2; n++) {
            try (CpuBackend cpu = new CpuBackend(threads[n])) {
                Tensor qkvT = cpu.upload("qkv", qkv, b, t, 3 * h * dh), qwT = cpu.upload("qw", qw, dh);
                Tensor kwT = cpu.upload("kw", kw, dh), cos = cpu.upload("cos", tables[0], t, dh);
                Tensor sin = cpu.upload("sin", tables[1], t, dh), rstd = cpu.empty(DType.F32, b, t, 2, h);
                Tensor[] heads = new Tensor[3];
                for (int i = 0; i < 3; i++) {
                    heads[i] = cpu.empty(DType.F32, b, h, t, dh);
                }
                cpu.network().qkNormRope(qkvT, h, qwT, kwT, EPS, cos, sin, heads[0], heads[1], heads[2], rstd);
                Tensor[] grads = new Tensor[3];
                for (int i = 0; i < 3; i++) {
                    int size = b * h * t * dh;
                    grads[i] = cpu.upload("g" + i, Arrays.copyOfRange(g, i * size, (i + 1) * size), b, h, t, dh);
                }
                Tensor gradQkv = cpu.empty(DType.F32, b, t, 3 * h * dh);
                Tensor gqw = cpu.zeros(DType.F32, dh), gkw = cpu.zeros(DType.F32, dh);
                cpu.network().qkNormRopeBackward(qkvT, h, qwT, kwT, EPS, cos, sin, rstd, grads[0], grads[1], grads[2],
                        gradQkv, gqw, gkw);
                results[n] = new float[][] {cpu.download(gradQkv), cpu.download(gqw), cpu.download(gkw)};
            }
        }
        for (int i = 0; i < 3; i++) {
            assertBitIdentical("qkNormRopeBackward 1 vs 3 threads, output " + i, results[0][i], results[1][i]);
        }
    }

    @Test
    void qkNormRopeBackwardRejectsWeightGradientsWithoutQkNormAndMissingRstd() {
        Tensor qkv = CPU.upload("qkv", nonZero(1, 2 * 3 * 12), 2, 3, 12);
        Tensor g = CPU.upload("g", nonZero(2, 24), 2, 2, 3, 2);
        Tensor w = CPU.upload("w", nonZero(3, 2), 2);
        assertThrows(IllegalArgumentException.class, () -> NET.qkNormRopeBackward(qkv, 2, null, null, EPS, null, null,
                null, g, g, g, poisoned("gq", 2, 3, 12), CPU.zeros(DType.F32, 2), null));
        assertThrows(NullPointerException.class, () -> NET.qkNormRopeBackward(qkv, 2, w, w, EPS, null, null, null, g,
                g, g, poisoned("gq", 2, 3, 12), null, null));
    }

    // ---------------------------------------------------------------- attention

    /** out [B, T, H·dh] from full score matrices: S = scale·q kᵀ, P = softmax(S) by rows, O = P v. */
    private static double[] attention64(double[][] in, int b, int h, int t, int dh, float scale, double[] lse) {
        double[] out = new double[b * t * h * dh];
        for (int bh = 0; bh < b * h; bh++) {
            double[][] s = new double[t][t];
            for (int i = 0; i < t; i++) {
                for (int j = 0; j < t; j++) {
                    for (int d = 0; d < dh; d++) {
                        s[i][j] += in[0][(bh * t + i) * dh + d] * in[1][(bh * t + j) * dh + d] * scale;
                    }
                }
                double max = Arrays.stream(s[i]).max().orElseThrow(), sum = 0;
                for (int j = 0; j < t; j++) {
                    sum += Math.exp(s[i][j] - max);
                }
                if (lse != null) {
                    lse[bh * t + i] = max + Math.log(sum);
                }
                for (int j = 0; j < t; j++) {
                    double p = Math.exp(s[i][j] - max) / sum;
                    for (int d = 0; d < dh; d++) {
                        out[((bh / h * t + i) * h + bh % h) * dh + d] += p * in[2][(bh * t + j) * dh + d];
                    }
                }
            }
        }
        return out;
    }

    /** {B, H, T, dh}. */
    private static final int[][] ATTENTION_CASES = {{1, 2, 5, 16}, {1, 1, 1, 16}, {2, 1, 37, 16}, {1, 1, 9, 72}};

    @Test
    void attentionBackwardMatchesFiniteDifferences() {
        long seed = 700;
        for (int[] c : ATTENTION_CASES) {
            int b = c[0], h = c[1], t = c[2], dh = c[3];
            String name = "attentionBackward " + Arrays.toString(c);
            float scale = (float) (1 / Math.sqrt(dh));
            float[][] qkv = {nonZero(seed++, numel(c)), nonZero(seed++, numel(c)), nonZero(seed++, numel(c))};
            float[] r = nonZero(seed++, numel(c));
            Tensor q = CPU.upload("q", qkv[0], c), k = CPU.upload("k", qkv[1], c), v = CPU.upload("v", qkv[2], c);
            Tensor out = poisoned("out", b, t, h * dh), lse = poisoned("lse", b, h, t);
            NET.attention(q, k, v, scale, out, lse);
            double[][] in = {toDouble(qkv[0]), toDouble(qkv[1]), toDouble(qkv[2])};
            double[] lse64 = new double[b * h * t];
            checkForward(name, attention64(in, b, h, t, dh, scale, lse64), CPU.download(out));
            checkForward(name + " lse", lse64, CPU.download(lse));

            Tensor gradOut = CPU.upload("gradOut", r, b, t, h * dh);
            Tensor[] grads = {poisoned("gradQ", c), poisoned("gradK", c), poisoned("gradV", c)};
            NET.attentionBackward(q, k, v, scale, out, lse, gradOut, grads[0], grads[1], grads[2]);
            FiniteDifferences.Forward f = x -> attention64(x, b, h, t, dh, scale, null);
            String[] roles = {"gradQ", "gradK", "gradV"};
            float[][] full = new float[3][];
            for (int i = 0; i < 3; i++) {
                int[] xs = coordinates(numel(c), COORDS, seed + i);
                full[i] = CPU.download(grads[i]);
                check(name + " " + roles[i], gradient(f, in, i, toDouble(r), xs), full[i], xs);
            }

            // Each gradient alone (the others null) is the same computation.
            for (int i = 0; i < 3; i++) {
                Tensor alone = poisoned(roles[i], c);
                NET.attentionBackward(q, k, v, scale, out, lse, gradOut, i == 0 ? alone : null,
                        i == 1 ? alone : null, i == 2 ? alone : null);
                assertBitIdentical(name + " " + roles[i] + " alone", full[i], CPU.download(alone));
            }
        }
    }

    @Test
    void attentionBackwardRejectsMissingLseAndSharedOutputs() {
        int[] c = {1, 2, 3, 4};
        Tensor q = CPU.upload("q", nonZero(1, 24), c), k = CPU.upload("k", nonZero(2, 24), c);
        Tensor v = CPU.upload("v", nonZero(3, 24), c), out = CPU.zeros(DType.F32, 1, 3, 8);
        Tensor lse = CPU.zeros(DType.F32, 1, 2, 3), g = CPU.upload("g", nonZero(4, 24), 1, 3, 8);
        assertThrows(NullPointerException.class,
                () -> NET.attentionBackward(q, k, v, 0.5f, out, null, g, poisoned("gq", c), null, null));
        Tensor shared = poisoned("shared", c);
        assertThrows(facm.tensor.ShapeException.class,
                () -> NET.attentionBackward(q, k, v, 0.5f, out, lse, g, shared, shared, null));
        assertThrows(facm.tensor.ShapeException.class,
                () -> NET.attentionBackward(q, k, v, 0.5f, out, lse, g, null, null, v));
    }
}
