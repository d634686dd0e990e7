package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static facm.backend.cuda.GpuCpuPair.assertBitEqual;
import static facm.backend.cuda.GpuCpuPair.assertWithinFractionOfMax;
import static facm.backend.cuda.GpuCpuPair.bf16Values;
import static facm.backend.cuda.GpuCpuPair.values;
import static facm.backend.cuda.GpuCpuPair.widen;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The bf16 tensor-core attention kernels (kernels/attention_tc*.cu, dispatched when q, k, v are BF16) against the CPU
 * backend on the same bf16 inputs (the CPU widens them exactly and computes in float64): forward, backward and JVP,
 * random non-zero inputs, outputs poisoned with NaN, odd T (1, 17, 77), the DiT shapes (B2·H16·T256·dh72, dh 64 and
 * 128 at T 256), F32 and BF16 outputs, null tangents.
 * <p>
 * Tolerances. out, outDot and the gradients: max |gpu − cpu| ≤ 1e-2 · max |cpu| per tensor. The kernels round P (and
 * P⊙Ṡ in the JVP, dS and dO in the backward) to bf16 before the second product, a relative error of 2^-9 ≈ 2e-3 per
 * term that partly averages out over the keys; the standalone harness (tools/attention-harness) measured at most
 * 4.1e-3 (outDot; out 3.1e-3, gradients 3.6e-3) over every head dimension and T on an H200, so 1e-2 leaves a ~2.5x
 * margin and still catches any indexing or masking
 * error (those give O(1) errors). A BF16 output adds one more rounding of 2^-9. lse: 1e-5 · max(1, max |lse|), since
 * the scores are fp32 sums of exact bf16 products and only their rounding differs from the float64 reference.
 */
@Tag("gpu")
class CudaTensorCoreAttentionTest extends GpuCpuPairTestBase {
    private static final double TOL = 1e-2;
    private static final double LSE_TOL = 1e-5;

    private NetworkOps gpu;
    private NetworkOps cpu;

    @Override
    void opened() {
        gpu = new CudaNetworkOps(p.gpu);
        cpu = p.cpu.network();
    }

    /** Within tol of the largest |cpu value| (at least floor) of the tensor, element by element. */
    private void assertClose(String what, GpuCpuPair.Both t, double tol, double floor) {
        assertWithinFractionOfMax(what + " " + t.gpu().describe(), widen(p.cpuValues(t)), p.gpuValues(t), tol, floor);
    }

    private void check(int b, int h, int t, int dh, DType outType, boolean nullTangents, long seed) {
        int n = b * h * t * dh;
        float scale = (float) (1 / Math.sqrt(dh));
        String shape = "B" + b + " H" + h + " T" + t + " dh" + dh + " out " + outType.lower()
                + (nullTangents ? " qDot,vDot null" : "");
        int[] head = {b, h, t, dh}, tok = {b, t, h * dh}, rows = {b, h, t};
        var q = p.uploadBf16("q", bf16Values(seed, n, -2, 2), head);
        var k = p.uploadBf16("k", bf16Values(seed + 1, n, -2, 2), head);
        var v = p.uploadBf16("v", bf16Values(seed + 2, n, -1, 1), head);
        var qDot = nullTangents ? null : p.uploadBf16("qDot", bf16Values(seed + 3, n, -1, 1), head);
        var kDot = p.uploadBf16("kDot", bf16Values(seed + 4, n, -1, 1), head);
        var vDot = nullTangents ? null : p.uploadBf16("vDot", bf16Values(seed + 5, n, -1, 1), head);

        // forward
        var out = p.poisoned("out", outType, tok);
        var lse = p.poisoned("lse", DType.F32, rows);
        gpu.attention(q.gpu(), k.gpu(), v.gpu(), scale, out.gpu(), lse.gpu());
        cpu.attention(q.cpu(), k.cpu(), v.cpu(), scale, out.cpu(), lse.cpu());
        assertClose("attention out " + shape, out, TOL, 0);
        assertClose("attention lse " + shape, lse, LSE_TOL, 1);

        // backward from the CPU's out and lse on both (gradOut F32 as the tape hands it; BF16 with a BF16 out)
        float[] outValues = p.cpuValues(out);
        var outIn = outType == DType.BF16 ? p.uploadBf16("outIn", p.cpu.downloadBf16(out.cpu()), tok)
                : p.upload("outIn", outValues, tok);
        var lseIn = p.upload("lseIn", p.cpu.download(lse.cpu()), rows);
        var gradOut = outType == DType.BF16 ? p.uploadBf16("gradOut", bf16Values(seed + 6, n, -1, 1), tok)
                : p.upload("gradOut", values(seed + 6, n, -1, 1), tok);
        var gq = p.poisoned("gradQ", DType.F32, head);
        var gk = p.poisoned("gradK", DType.F32, head);
        var gv = p.poisoned("gradV", DType.F32, head);
        gpu.attentionBackward(q.gpu(), k.gpu(), v.gpu(), scale, outIn.gpu(), lseIn.gpu(), gradOut.gpu(), gq.gpu(),
                gk.gpu(), gv.gpu());
        cpu.attentionBackward(q.cpu(), k.cpu(), v.cpu(), scale, outIn.cpu(), lseIn.cpu(), gradOut.cpu(), gq.cpu(),
                gk.cpu(), gv.cpu());
        assertClose("attentionBackward gradQ " + shape, gq, TOL, 1e-3);
        assertClose("attentionBackward gradK " + shape, gk, TOL, 1e-3);
        assertClose("attentionBackward gradV " + shape, gv, TOL, 1e-3);
        // deterministic: a second run gives the same bits
        float[] firstQ = p.gpuValues(gq), firstK = p.gpuValues(gk), firstV = p.gpuValues(gv);
        p.gpu.fill(gq.gpu(), Float.NaN);
        p.gpu.fill(gk.gpu(), Float.NaN);
        p.gpu.fill(gv.gpu(), Float.NaN);
        gpu.attentionBackward(q.gpu(), k.gpu(), v.gpu(), scale, outIn.gpu(), lseIn.gpu(), gradOut.gpu(), gq.gpu(),
                gk.gpu(), gv.gpu());
        assertBitEqual("attentionBackward gradQ rerun " + shape, firstQ, p.gpuValues(gq));
        assertBitEqual("attentionBackward gradK rerun " + shape, firstK, p.gpuValues(gk));
        assertBitEqual("attentionBackward gradV rerun " + shape, firstV, p.gpuValues(gv));

        // JVP
        var jOut = p.poisoned("jvpOut", outType, tok);
        var jOutDot = p.poisoned("jvpOutDot", outType, tok);
        var jLse = p.poisoned("jvpLse", DType.F32, rows);
        gpu.attentionJvp(q.gpu(), k.gpu(), v.gpu(), qDot == null ? null : qDot.gpu(), kDot.gpu(),
                vDot == null ? null : vDot.gpu(), scale, jOut.gpu(), jOutDot.gpu(), jLse.gpu());
        cpu.attentionJvp(q.cpu(), k.cpu(), v.cpu(), qDot == null ? null : qDot.cpu(), kDot.cpu(),
                vDot == null ? null : vDot.cpu(), scale, jOut.cpu(), jOutDot.cpu(), jLse.cpu());
        assertClose("attentionJvp out " + shape, jOut, TOL, 0);
        assertClose("attentionJvp outDot " + shape, jOutDot, TOL, 1e-3);
        assertClose("attentionJvp lse " + shape, jLse, LSE_TOL, 1);
        p.closeTensors();
    }

    @Test
    void oddTokenCountsEveryHeadDim() {
        long seed = 100;
        for (int dh : CudaTensorCoreAttention.SUPPORTED_HEAD_DIMS) {
            for (int t : new int[] {1, 17, 77}) {
                check(1, 2, t, dh, DType.F32, false, seed += 10);
            }
        }
    }

    @Test
    void ditShapes() {
        check(2, 16, 256, 72, DType.F32, false, 1);
        check(1, 4, 256, 64, DType.F32, false, 2);
        check(1, 4, 256, 128, DType.F32, false, 3);
    }

    @Test
    void bf16OutputsAndNullTangents() {
        check(2, 3, 77, 72, DType.BF16, true, 7);
        check(1, 2, 130, 64, DType.BF16, false, 8);
        check(1, 2, 33, 128, DType.F32, true, 9);
    }

    /**
     * The forward's blocks own 128 query rows for dh &le; 80 (64 for dh 128) and stream 32-key tiles through a ring of
     * shared buffers: T = 129 leaves one row in the last block, T = 300 has a row tail and a key tail (300 = 9·32 + 12)
     * and more tiles than the ring has stages, T = 64 and 128 fill blocks exactly.
     */
    @Test
    void forwardBlockAndKeyTailsEveryHeadDim() {
        long seed = 500;
        for (int dh : CudaTensorCoreAttention.SUPPORTED_HEAD_DIMS) {
            for (int t : new int[] {64, 128, 129, 300}) {
                int b = 1, h = 2, n = b * h * t * dh;
                float scale = (float) (1 / Math.sqrt(dh));
                String shape = "B" + b + " H" + h + " T" + t + " dh" + dh;
                int[] head = {b, h, t, dh};
                var q = p.uploadBf16("q", bf16Values(seed++, n, -2, 2), head);
                var k = p.uploadBf16("k", bf16Values(seed++, n, -2, 2), head);
                var v = p.uploadBf16("v", bf16Values(seed++, n, -1, 1), head);
                var out = p.poisoned("out", DType.BF16, b, t, h * dh);
                var lse = p.poisoned("lse", DType.F32, b, h, t);
                gpu.attention(q.gpu(), k.gpu(), v.gpu(), scale, out.gpu(), lse.gpu());
                cpu.attention(q.cpu(), k.cpu(), v.cpu(), scale, out.cpu(), lse.cpu());
                assertClose("attention out " + shape, out, TOL, 0);
                assertClose("attention lse " + shape, lse, LSE_TOL, 1);
                p.closeTensors();
            }
        }
    }

    @Test
    void unsupportedHeadDimIsAShapeError() {
        int b = 1, h = 1, t = 8, dh = 24;
        int n = b * h * t * dh;
        short[] bits = bf16Values(5, n, -1, 1);
        var q = p.uploadBf16("q", bits, b, h, t, dh);
        var out = p.poisoned("out", DType.F32, b, t, h * dh);
        ShapeException e = assertThrows(ShapeException.class,
                () -> gpu.attention(q.gpu(), q.gpu(), q.gpu(), 0.2f, out.gpu(), null));
        if (!e.getMessage().contains("attention") || !e.getMessage().contains(Arrays.toString(
                CudaTensorCoreAttention.SUPPORTED_HEAD_DIMS))) {
            throw new AssertionError("message should name the op and the supported head dims: " + e.getMessage());
        }
    }
}
