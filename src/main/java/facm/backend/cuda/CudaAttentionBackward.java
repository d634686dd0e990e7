package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.tensor.DType;
import facm.tensor.NetworkChecks;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

import static facm.backend.cuda.CudaNetworkChecks.addressOrNull;
import static facm.backend.cuda.CudaNetworkChecks.aligned16;
import static facm.tensor.NetworkChecks.describeOrNull;
import static facm.tensor.NetworkChecks.requireEps;
import static facm.tensor.Shapes.requireNoSharing;
import static facm.tensor.Shapes.requireRank;
import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.PTR;

/**
 * Launchers of the backward passes of the attention pair (contract: facm.tensor.NetworkOps): qk-norm + RoPE + head
 * split (kernels/rope_grad.cu; qk-norm weight gradients by the deterministic reduction of {@link PartialSums}) and the
 * fused flash-style attention backward (kernels/attention.cu: a query-stationary kernel for gradQ that also computes
 * D_i = Σ dO·O, then a key-stationary kernel for gradK and gradV; no atomics, deterministic).
 */
final class CudaAttentionBackward implements AutoCloseable {
    /** Query or key rows owned by one block of the attention backward kernels (ROWS in kernels/attention.cu). */
    private static final int ATTENTION_THREADS = 128;
    /** qk_norm_rope_bwd: one warp per (b, t, h), exactly 8 warps a block (its shared warp sums). */
    private static final int ROPE_BLOCK = 256;
    private static final int ROPE_MAX_HEAD_DIM = 256;
    /**
     * Blocks of qk_norm_rope_bwd at most: each writes one partial row per weight, so this bounds the partials and the
     * finishing pass. A constant, not a function of the GPU, so the summation order depends on the shape alone.
     */
    private static final int ROPE_MAX_BLOCKS = 512;
    /** qk_norm_rope_bwd_tok: a thread per 8-channel chunk of a token, at most 512 threads (its launch bounds). */
    private static final int ROPE_TOKEN_CHUNK = 8;
    private static final int ROPE_TOKEN_MAX_THREADS = 512;
    private static final int MAX_GRID_Y = 65_535;

    private final CudaNetworkChecks check;
    private final CudaStream stream;
    private final PartialSums sums;
    private final ScratchBuffer scratch;
    private final Kernel qkNormRope;
    private final Kernel qkNormRopeTok;
    private final Map<Integer, Kernel[]> attentionByHeadDim = new LinkedHashMap<>();
    /** The bf16 tensor-core kernels (kernels/attention_tc_bwd.cu), taken when q, k, v are BF16. */
    private final CudaTensorCoreAttention tensorCore;

    CudaAttentionBackward(CudaNetworkChecks check, KernelLibrary lib, CudaStream stream, PartialSums sums,
                          ScratchBuffer scratch) {
        this.check = check;
        this.stream = stream;
        this.sums = sums;
        this.scratch = scratch;
        qkNormRope = lib.kernel("qk_norm_rope_bwd", PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32,
                I32, I32);
        qkNormRopeTok = lib.kernel("qk_norm_rope_bwd_tok", PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32,
                I32, I32, I32);
        for (int dh : CudaAttention.SUPPORTED_HEAD_DIMS) {
            Kernel dq = lib.kernel("attention_bwd_dq_f32_dh" + dh, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32,
                    F32);
            Kernel dkdv = lib.kernel("attention_bwd_dkdv_f32_dh" + dh, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32,
                    I32, F32);
            attentionByHeadDim.put(dh, new Kernel[] {dq, dkdv});
        }
        tensorCore = new CudaTensorCoreAttention(lib, stream);
    }

    void qkNormRopeBackward(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                            Tensor ropeSin, Tensor rstd, Tensor gradQ, Tensor gradK, Tensor gradV, Tensor gradQkv,
                            Tensor gradQWeight, Tensor gradKWeight) {
        String op = "qkNormRopeBackward";
        CudaTensor in = check.f32(op, "qkv", qkv);
        requireRank(op, "qkv [B, T, 3·H·dh]", in, 3);
        int b = in.dim(0), t = in.dim(1);
        if (heads < 1 || in.dim(2) == 0 || in.dim(2) % (3 * heads) != 0) {
            throw new ShapeException(op + ": qkv " + in.describe()
                    + " last dimension should be 3·heads·dh with heads = " + heads + " and dh >= 1");
        }
        int dh = in.dim(2) / (3 * heads);
        String headShape = "[B,H,T,dh] = " + Shapes.str(new int[] {b, heads, t, dh}) + " for qkv " + in.describe();
        CudaTensor gq = check.f32(op, "gradQ", gradQ), gk = check.f32(op, "gradK", gradK);
        CudaTensor gv = check.f32(op, "gradV", gradV);
        Shapes.requireShape(op + ": gradQ " + headShape, gq, b, heads, t, dh);
        Shapes.requireShape(op + ": gradK " + headShape, gk, b, heads, t, dh);
        Shapes.requireShape(op + ": gradV " + headShape, gv, b, heads, t, dh);
        if ((qWeight == null) != (kWeight == null)) {
            throw new IllegalArgumentException(op + ": qWeight and kWeight must both be given (qk-norm on) or both "
                    + "be null (qk-norm off); got qWeight " + describeOrNull(qWeight) + ", kWeight "
                    + describeOrNull(kWeight));
        }
        CudaTensor qw = null, kw = null;
        if (qWeight != null) {
            qw = check.f32(op, "qWeight", qWeight);
            kw = check.f32(op, "kWeight", kWeight);
            Shapes.requireShape(op + ": qWeight [dh]", qw, dh);
            Shapes.requireShape(op + ": kWeight [dh]", kw, dh);
            requireEps(op, eps);
        }
        if ((ropeCos == null) != (ropeSin == null)) {
            throw new IllegalArgumentException(op + ": ropeCos and ropeSin must both be given (RoPE on) or both be "
                    + "null (RoPE off); got ropeCos " + describeOrNull(ropeCos) + ", ropeSin "
                    + describeOrNull(ropeSin));
        }
        CudaTensor cos = null, sin = null;
        if (ropeCos != null) {
            cos = check.f32(op, "ropeCos", ropeCos);
            sin = check.f32(op, "ropeSin", ropeSin);
            Shapes.requireShape(op + ": ropeCos [T, dh]", cos, t, dh);
            Shapes.requireShape(op + ": ropeSin [T, dh]", sin, t, dh);
        }
        CudaTensor r = null;
        if (qw != null) {
            Objects.requireNonNull(rstd, () -> op + ": rstd is null; with qk-norm on the backward needs the ρ saved "
                    + "by the forward");
            r = check.f32(op, "rstd", rstd);
            Shapes.requireShape(op + ": rstd [B,T,2,H]", r, b, t, 2, heads);
        } else if (gradQWeight != null || gradKWeight != null) {
            throw new IllegalArgumentException(op + ": gradQWeight/gradKWeight were given but qk-norm is off "
                    + "(qWeight and kWeight are null), so there are no weights to differentiate");
        }
        CudaTensor out = null;
        if (gradQkv != null) {
            out = check.f32(op, "gradQkv", gradQkv);
            Shapes.requireSame(op + " (gradQkv vs qkv)", out, in);
            requireNoSharing(op, out, in, qw, kw, cos, sin, r, gq, gk, gv);
        }
        CudaTensor gqw = weightGradient(op, "gradQWeight", gradQWeight, dh, in, qw, kw, r, gq, gk, gv, out);
        CudaTensor gkw = weightGradient(op, "gradKWeight", gradKWeight, dh, in, qw, kw, r, gq, gk, gv, out, gqw);
        // The kernel moves channel pairs as float2 and keeps a head vector in one warp's registers.
        if (dh % 2 != 0 || dh > ROPE_MAX_HEAD_DIM) {
            throw new ShapeException(op + ": the CUDA kernel needs an even head dimension <= " + ROPE_MAX_HEAD_DIM
                    + "; qkv " + in.describe() + " with " + heads + " heads has dh = " + dh);
        }
        if (!CudaNetworkChecks.aligned(8, in, gq, gk, gv, out, cos, sin)) {
            throw new IllegalStateException(op + ": qkv, the gradients and the RoPE tables must start on 8-byte "
                    + "boundaries (device buffers always do): " + in.describe() + ", " + gq.describe());
        }
        long headVectors = (long) b * t * heads;
        if (headVectors == 0 || (out == null && gqw == null && gkw == null)) {
            return;
        }
        boolean weights = gqw != null || gkw != null;
        int tokenThreads = (3 * heads * (dh / ROPE_TOKEN_CHUNK) + 31) / 32 * 32;
        if (dh % ROPE_TOKEN_CHUNK == 0 && tokenThreads <= ROPE_TOKEN_MAX_THREADS && b <= MAX_GRID_Y
                && headVectors < Integer.MAX_VALUE
                && CudaNetworkChecks.aligned(16, in, gq, gk, gv, out, cos, sin, qw, kw)) {
            // Token blocks: grid (gx, B), gx a function of the shape only (the weight sums' order), a partial row
            // per block.
            int gx = Math.max(1, Math.min(t, ROPE_MAX_BLOCKS / b));
            int blocks = gx * b;
            long partials = weights ? scratch.regions(op, (long) blocks * 2 * dh * Float.BYTES)[0] : 0L;
            qkNormRopeTok.launch(stream, gx, b, 1, tokenThreads, 1, 1, 2 * heads * dh * Float.BYTES, in.address(),
                    addressOrNull(qw), addressOrNull(kw), addressOrNull(cos), addressOrNull(sin), addressOrNull(r),
                    gq.address(), gk.address(), gv.address(), addressOrNull(out), partials, b, t, heads, dh);
            accumulateWeightGradients(partials, gqw, gkw, blocks, dh);
            return;
        }
        int warpsPerBlock = ROPE_BLOCK / 32;
        int grid = (int) Math.min((headVectors + warpsPerBlock - 1) / warpsPerBlock, ROPE_MAX_BLOCKS);
        long partials = weights ? scratch.regions(op, (long) grid * 2 * dh * Float.BYTES)[0] : 0L;
        qkNormRope.launch(stream, grid, 1, 1, ROPE_BLOCK, 1, 1, 0, in.address(), addressOrNull(qw), addressOrNull(kw),
                addressOrNull(cos), addressOrNull(sin), addressOrNull(r), gq.address(), gk.address(), gv.address(),
                addressOrNull(out), partials, b, t, heads, dh);
        accumulateWeightGradients(partials, gqw, gkw, grid, dh);
    }

    /** Adds the backward's partial rows [rows, 2, dh] (q then k) in row order into the weight gradients. */
    private void accumulateWeightGradients(long partials, CudaTensor gqw, CudaTensor gkw, int rows, int dh) {
        if (gqw != null) {
            sums.accumulate(partials, 2L * dh, gqw.address(), 0, 1, rows, dh);
        }
        if (gkw != null) {
            sums.accumulate(partials + (long) dh * Float.BYTES, 2L * dh, gkw.address(), 0, 1, rows, dh);
        }
    }

    private CudaTensor weightGradient(String op, String role, Tensor grad, int dh, CudaTensor... inputs) {
        if (grad == null) {
            return null;
        }
        CudaTensor g = check.f32(op, role, grad);
        Shapes.requireShape(op + ": " + role + " [dh]", g, dh);
        requireNoSharing(op, g, inputs);
        return g;
    }

    void attentionBackward(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse, Tensor gradOut,
                           Tensor gradQ, Tensor gradK, Tensor gradV) {
        String op = "attentionBackward";
        CudaTensor qs = check.floating(op, "q", q), ks = check.floating(op, "k", k);
        CudaTensor vs = check.floating(op, "v", v), o = check.floating(op, "out", out);
        CudaTensor go = check.floating(op, "gradOut", gradOut);
        Objects.requireNonNull(lse, () -> op + ": lse is null; the backward recomputes the probabilities from it");
        CudaTensor l = check.f32(op, "lse", lse);
        requireRank(op, "q [B,H,T,dh]", qs, 4);
        Shapes.requireSame(op + " (k vs q)", ks, qs);
        Shapes.requireSame(op + " (v vs q)", vs, qs);
        int b = qs.dim(0), heads = qs.dim(1), t = qs.dim(2), dh = qs.dim(3);
        Shapes.requireShape(op + ": out [B, T, H·dh] for q " + qs.describe(), o, b, t, heads * dh);
        Shapes.requireSame(op + " (gradOut vs out)", go, o);
        Shapes.requireShape(op + ": lse [B,H,T] for q " + qs.describe(), l, b, heads, t);
        if (Float.isNaN(scale) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException(op + ": scale must be finite, got " + scale);
        }
        NetworkChecks.attentionDTypes(op, qs, ks, vs, o);
        NetworkChecks.attentionActivation(op, "gradOut", go, qs);
        CudaTensor gq = gradHead(op, "gradQ", gradQ, qs, ks, vs, o, l, go);
        CudaTensor gk = gradHead(op, "gradK", gradK, qs, ks, vs, o, l, go, gq);
        CudaTensor gv = gradHead(op, "gradV", gradV, qs, ks, vs, o, l, go, gq, gk);
        if (dh == 0) {
            throw new ShapeException(op + ": q " + qs.describe() + " has head dimension 0");
        }
        if (qs.dtype() == DType.BF16) {
            long[] regions = (long) b * heads * t == 0 ? new long[] {0L, 0L}
                    : scratch.regions(op, CudaTensorCoreAttention.backwardScratch(qs));
            tensorCore.backward(op, qs, ks, vs, scale, o, l, go, gq, gk, gv, regions[0], regions[1]);
            return;
        }
        Kernel[] kernels = attentionByHeadDim.get(dh);
        if (kernels == null) {
            throw new ShapeException(op + ": q " + qs.describe() + " has head dimension " + dh
                    + "; the CUDA kernels exist for " + Arrays.toString(CudaAttention.SUPPORTED_HEAD_DIMS)
                    + " (add an instantiation in kernels/attention.cu)");
        }
        if (!aligned16(qs, ks, vs, o, go, gq, gk, gv)) {
            throw new IllegalStateException(op + ": q, k, v, out, gradOut and the gradients must start on 16-byte "
                    + "boundaries (device buffers always do): " + qs.describe() + ", " + o.describe());
        }
        // Rows per block: 128 threads, SPLIT = 2 threads per row for dh <= 80, else 4 (kernels/attention.cu).
        int rowsPerBlock = ATTENTION_THREADS / (dh > 80 ? 4 : 2);
        long blocks = (long) ((t + rowsPerBlock - 1) / rowsPerBlock) * b * heads;
        if (blocks == 0 || (gq == null && gk == null && gv == null)) {
            return;
        }
        if (blocks > Integer.MAX_VALUE) {
            throw new ShapeException(op + ": q " + qs.describe() + " needs " + blocks + " blocks, more than one "
                    + "launch takes");
        }
        long delta = scratch.regions(op, (long) b * heads * t * Float.BYTES)[0];
        kernels[0].launch(stream, (int) blocks, 1, 1, ATTENTION_THREADS, 1, 1, 0, qs.address(), ks.address(),
                vs.address(), o.address(), l.address(), go.address(), addressOrNull(gq), delta, heads, t, scale);
        if (gk != null || gv != null) {
            kernels[1].launch(stream, (int) blocks, 1, 1, ATTENTION_THREADS, 1, 1, 0, qs.address(), ks.address(),
                    vs.address(), l.address(), go.address(), delta, addressOrNull(gk), addressOrNull(gv), heads, t,
                    scale);
        }
    }

    /** A head-layout gradient output [B,H,T,dh] like q, or null; it may share storage with none of the others. */
    private CudaTensor gradHead(String op, String role, Tensor grad, CudaTensor q, CudaTensor... others) {
        if (grad == null) {
            return null;
        }
        CudaTensor g = check.f32(op, role, grad);
        Shapes.requireSame(op + " (" + role + " vs q)", g, q);
        requireNoSharing(op, g, q);
        requireNoSharing(op, g, others);
        return g;
    }

    @Override
    public void close() {
        scratch.close();
    }
}
