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
 * Backward kernels of the layout and elementwise layers (kernels/embed.cu, swiglu.cu) against the CPU reference
 * (facm.backend.cpu, float64 inside, each output rounded once), on random non-zero inputs with NaN-poisoned outputs.
 *
 * <p>Tolerances: patchify/unpatchify backward are permutations (bit-exact). embeddingBackward adds in fp32 in batch
 * order, the CPU in fp64: |Δ| ≤ (k + 1)·2⁻²⁴·(|gradTable| + Σ|gradOut|) for a row hit by k ids. SwiGLU and SiLU
 * backward: fp32 with the accurate expf against fp64, |Δ| ≤ 4e-6 of the magnitudes of the terms
 * |go·u·σ|·(1 + |g(1−σ)|) (SiLU′ crosses zero near g = −1.28, where a relative bound on the result would be
 * meaningless) and 4e-6·|go·g·σ|.
 */
@Tag("gpu")
class CudaLayerBackwardTest extends GpuCpuPairTestBase {
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

    // ---------------------------------------------------------------- layout

    private void checkPatches(int b, int c, int h, int w, int patch, long seed) {
        String what = "B" + b + " C" + c + " " + h + "x" + w + " p" + patch;
        int tokens = (h / patch) * (w / patch), features = c * patch * patch;
        var gradTokens = p.upload("gradTokens", values(seed, b * tokens * features, -1f, 1f), b, tokens, features);
        var gradX = p.poisoned("gradX", DType.F32, b, c, h, w);
        gpu.patchifyBackward(gradTokens.gpu(), patch, gradX.gpu());
        cpu.patchifyBackward(gradTokens.cpu(), patch, gradX.cpu());
        assertBitEqual("patchifyBackward " + what, p.cpu.download(gradX.cpu()), p.gpu.download(gradX.gpu()));

        var gradOut = p.upload("gradOut", values(seed + 1, b * c * h * w, -1f, 1f), b, c, h, w);
        var gradTok = p.poisoned("gradTok", DType.F32, b, tokens, features);
        gpu.unpatchifyBackward(gradOut.gpu(), patch, gradTok.gpu());
        cpu.unpatchifyBackward(gradOut.cpu(), patch, gradTok.cpu());
        assertBitEqual("unpatchifyBackward " + what, p.cpu.download(gradTok.cpu()), p.gpu.download(gradTok.gpu()));
    }

    @Test
    void patchPermutationsMatchCpu() {
        checkPatches(2, 32, 16, 16, 1, 10);  // LightningDiT latents, patch 1
        checkPatches(3, 4, 32, 32, 2, 11);
        checkPatches(1, 3, 6, 9, 3, 12);     // non-square, odd patch
        checkPatches(1, 1, 1, 1, 1, 13);
    }

    @Test
    void patchBackwardAcceptsNullOutputAndRejectsBadPatch() {
        var gradTokens = p.upload("gradTokens", values(20, 2 * 4 * 12, -1f, 1f), 2, 4, 12);
        gpu.patchifyBackward(gradTokens.gpu(), 2, null);
        var gradX = p.poisoned("gradX", DType.F32, 2, 3, 4, 4);
        assertThrows(ShapeException.class, () -> gpu.patchifyBackward(gradTokens.gpu(), 3, gradX.gpu()));
    }

    // ---------------------------------------------------------------- embedding

    private void checkEmbedding(int rows, int d, int[] ids, long seed) {
        int b = ids.length;
        String what = "V" + rows + " D" + d + " B" + b;
        float[] g = values(seed, b * d, -1f, 1f);
        float[] init = values(seed + 1, rows * d, -1f, 1f);
        var gradOut = p.upload("gradOut", g, b, d);
        var idt = p.upload("ids", ids, b);
        var table = p.upload("gradTable", init, rows, d);
        gpu.embeddingBackward(gradOut.gpu(), idt.gpu(), table.gpu());
        cpu.embeddingBackward(gradOut.cpu(), idt.cpu(), table.cpu());
        // k fp32 additions into a row, each rounding by at most 2⁻²⁴ of the running magnitude, plus the CPU's one.
        float[] tol = new float[rows * d];
        int[] uses = new int[rows];
        for (int i = 0; i < tol.length; i++) {
            tol[i] = Math.abs(init[i]);
        }
        for (int i = 0; i < b; i++) {
            uses[ids[i]]++;
            for (int j = 0; j < d; j++) {
                tol[ids[i] * d + j] += Math.abs(g[i * d + j]);
            }
        }
        for (int i = 0; i < tol.length; i++) {
            tol[i] *= (uses[i / d] + 1) * 0x1p-24f;
        }
        assertWithin("embeddingBackward " + what, p.cpu.download(table.cpu()), p.gpu.download(table.gpu()), tol);
    }

    @Test
    void embeddingAccumulatesRepeatedIdsLikeCpu() {
        checkEmbedding(11, 37, new int[] {3, 0, 10, 3, 3, 7, 0}, 30);
        // ImageNet table with the null class (row 1000) repeated, as label dropout makes it, at XL width.
        int[] ids = new int[32];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = i % 3 == 0 ? 1000 : (i * 37) % 1000;
        }
        checkEmbedding(1001, 1152, ids, 31);
        checkEmbedding(5, 1, new int[] {4}, 32);
    }

    // ---------------------------------------------------------------- SwiGLU and SiLU

    private static double sigmoid(double x) {
        return 1 / (1 + Math.exp(-x));
    }

    private void checkSwiglu(int rows, int f, long seed) {
        String what = "rows " + rows + " F " + f;
        float[] gu = values(seed, rows * 2 * f, -8f, 8f);
        float[] g = values(seed + 1, rows * f, -1f, 1f);
        var guT = p.upload("gu", gu, rows, 2 * f);
        var gradOut = p.upload("gradOut", g, rows, f);
        var gradGu = p.poisoned("gradGu", DType.F32, rows, 2 * f);
        gpu.swigluBackward(guT.gpu(), gradOut.gpu(), gradGu.gpu());
        cpu.swigluBackward(guT.cpu(), gradOut.cpu(), gradGu.cpu());
        float[] tol = new float[rows * 2 * f];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < f; j++) {
                double x = gu[r * 2 * f + j], u = gu[r * 2 * f + f + j], dy = g[r * f + j], s = sigmoid(x);
                tol[r * 2 * f + j] = (float) (4e-6 * Math.abs(dy * u * s) * (1 + Math.abs(x * (1 - s))) + 1e-30);
                tol[r * 2 * f + f + j] = (float) (4e-6 * Math.abs(dy * x * s) + 1e-30);
            }
        }
        assertWithin("swigluBackward " + what, p.cpu.download(gradGu.cpu()), p.gpu.download(gradGu.gpu()), tol);
    }

    @Test
    void swigluBackwardMatchesCpu() {
        checkSwiglu(37, 48, 40);      // vec4 path
        checkSwiglu(5, 37, 41);       // scalar path (F odd)
        checkSwiglu(512, 3072, 42);   // XL MLP width (2 passes of 384 threads)
        checkSwiglu(1, 1, 43);
    }

    private void checkSilu(int n, boolean inPlace, boolean overX, long seed) {
        float[] x = values(seed, n, -30f, 30f);
        float[] g = values(seed + 1, n, -1f, 1f);
        var xs = p.upload("x", x, n);
        var gradOut = p.upload("gradOut", g, n);
        var gradIn = inPlace ? gradOut : overX ? xs : p.poisoned("gradIn", DType.F32, n);
        gpu.siluBackward(xs.gpu(), gradOut.gpu(), gradIn.gpu());
        cpu.siluBackward(xs.cpu(), gradOut.cpu(), gradIn.cpu());
        float[] tol = new float[n];
        for (int i = 0; i < n; i++) {
            double s = sigmoid(x[i]);
            tol[i] = (float) (4e-6 * Math.abs(g[i] * s) * (1 + Math.abs(x[i] * (1 - s))) + 1e-30);
        }
        String what = "n " + n + (inPlace ? " gradIn = gradOut" : overX ? " gradIn = x" : "");
        assertWithin("siluBackward " + what, p.cpu.download(gradIn.cpu()), p.gpu.download(gradIn.gpu()), tol);
    }

    @Test
    void siluBackwardMatchesCpuAlsoInPlace() {
        checkSilu(1001, false, false, 50);
        checkSilu(32 * 1152, true, false, 51);  // the adaLN conditioning c [B, D]
        checkSilu(77, false, true, 52);
    }
}
