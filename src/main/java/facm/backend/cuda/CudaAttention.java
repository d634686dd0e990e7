package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelArg;
import facm.cuda.KernelLibrary;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.NetworkChecks;
import facm.tensor.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import static facm.backend.cuda.CudaNetworkChecks.addressOrNull;
import static facm.backend.cuda.CudaNetworkChecks.aligned16;
import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.PTR;

/**
 * Launchers of the attention pair of {@link CudaNetworkOps}: qk-norm + RoPE + head split (kernels/rope.cu) and the
 * fused online-softmax attention forward (kernels/attention.cu, one kernel per head dimension).
 */
final class CudaAttention {
    /** Head dimensions with an attention_fwd_f32_dh&lt;dh&gt; kernel (exactly those kernels/attention.cu builds). */
    static final int[] SUPPORTED_HEAD_DIMS = {16, 32, 64, 72, 128};
    /** Query rows per attention block and threads per block (ATT_ROWS, ATT_THREADS in kernels/attention.cu). */
    private static final int ATTENTION_ROWS = 64;
    private static final int ATTENTION_THREADS = 128;
    /**
     * qk_norm_rope_fwd (the fallback for shapes the token-block kernels do not take): one warp per (b, t, h), 8 warps
     * a block; head vectors up to 256 (ROPE_MAX_PAIRS_PER_LANE).
     */
    private static final int ROPE_BLOCK = 256;
    private static final int ROPE_MAX_HEAD_DIM = 256;
    /**
     * qk_norm_rope_fwd_tok*: one block per token, a thread per 8-channel chunk of the token's 3·H·dh values
     * (ROPE_CHUNK); taken when dh % 8 == 0, the chunks fit one block and every pointer is 16-byte aligned.
     */
    private static final int ROPE_TOKEN_CHUNK = 8;
    private static final int ROPE_TOKEN_MAX_THREADS = 1024;
    /** Blocks a token-block launch aims at (the blocks stride over tokens): ~8 per SM of an H100/H200. */
    private static final int ROPE_TOKEN_TARGET_BLOCKS = 1056;
    private static final int MAX_GRID_Y = 65_535;

    /** The bf16 tensor-core kernels (kernels/attention_tc*.cu), taken when q, k, v are BF16. */
    private final CudaTensorCoreAttention tensorCore;

    private final CudaNetworkChecks check;
    private final CudaStream stream;
    private final Kernel qkNormRope;
    private final Kernel qkNormRopeBf16;
    private final Kernel qkNormRopeBf16F32Out;
    private final Kernel qkNormRopeF32Bf16Out;
    private final Kernel qkNormRopeTok;
    private final Kernel qkNormRopeTokBf16;
    private final Kernel qkNormRopeTokBf16F32Out;
    private final Kernel qkNormRopeTokF32Bf16Out;
    private final Map<Integer, Kernel> attentionByHeadDim = new LinkedHashMap<>();

    CudaAttention(CudaNetworkChecks check, KernelLibrary lib, CudaStream stream) {
        this.check = check;
        this.stream = stream;
        KernelArg[] rope = {PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32};
        qkNormRope = lib.kernel("qk_norm_rope_fwd", rope);
        qkNormRopeBf16 = lib.kernel("qk_norm_rope_fwd_bf16", rope);
        qkNormRopeBf16F32Out = lib.kernel("qk_norm_rope_fwd_bf16_f32out", rope);
        qkNormRopeF32Bf16Out = lib.kernel("qk_norm_rope_fwd_bf16out", rope);
        qkNormRopeTok = lib.kernel("qk_norm_rope_fwd_tok", rope);
        qkNormRopeTokBf16 = lib.kernel("qk_norm_rope_fwd_tok_bf16", rope);
        qkNormRopeTokBf16F32Out = lib.kernel("qk_norm_rope_fwd_tok_bf16_f32out", rope);
        qkNormRopeTokF32Bf16Out = lib.kernel("qk_norm_rope_fwd_tok_bf16out", rope);
        for (int dh : SUPPORTED_HEAD_DIMS) {
            attentionByHeadDim.put(dh, lib.kernel("attention_fwd_f32_dh" + dh, PTR, PTR, PTR, PTR, PTR, I32, I32, F32));
        }

        tensorCore = new CudaTensorCoreAttention(lib, stream);
    }

    /** The bf16 tensor-core launchers (shared with the JVP). */
    CudaTensorCoreAttention tensorCore() {
        return tensorCore;
    }

    /** The checked arguments of {@link #qkNormRope} (null where absent). */
    record QkNormRopeArgs(CudaTensor qkv, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor qWeight,
                          CudaTensor kWeight, CudaTensor cos, CudaTensor sin, CudaTensor rstd, int batch, int tokens,
                          int dh) {
    }

    /** The checked arguments of {@link #attention} (lse null where absent). */
    record AttentionArgs(CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor out, CudaTensor lse) {
    }

    /**
     * qkv F32 or BF16 (the bf16 qkv GEMM's output) → q, k, v all F32 or all BF16 (tensor-core attention operands; a
     * bf16 training pass keeps its f32 qkv for the backward). Statistics and rotation in fp32, each output rounded
     * once; rstd F32.
     */
    void qkNormRope(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos, Tensor ropeSin,
                    Tensor q, Tensor k, Tensor v, Tensor rstd) {
        QkNormRopeArgs a = checkQkNormRope("qkNormRope", qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v,
                rstd, true);
        long headVectors = (long) a.batch() * a.tokens() * heads;
        if (headVectors == 0) {
            return;
        }
        boolean bf16In = a.qkv().dtype() == DType.BF16;
        boolean bf16Out = a.q().dtype() == DType.BF16;
        int chunks = 3 * heads * (a.dh() / ROPE_TOKEN_CHUNK);
        boolean tokenBlocks = a.dh() % ROPE_TOKEN_CHUNK == 0 && chunks <= ROPE_TOKEN_MAX_THREADS
                && a.batch() <= MAX_GRID_Y && headVectors < Integer.MAX_VALUE
                && aligned16(a.qkv(), a.q(), a.k(), a.v(), a.qWeight(), a.kWeight(), a.cos(), a.sin());
        Object[] args = {a.qkv().address(), addressOrNull(a.qWeight()), addressOrNull(a.kWeight()),
                addressOrNull(a.cos()), addressOrNull(a.sin()), a.q().address(), a.k().address(), a.v().address(),
                addressOrNull(a.rstd()), a.batch(), a.tokens(), heads, a.dh(), eps};
        if (tokenBlocks) {
            Kernel kernel = bf16Out ? (bf16In ? qkNormRopeTokBf16 : qkNormRopeTokF32Bf16Out)
                    : (bf16In ? qkNormRopeTokBf16F32Out : qkNormRopeTok);
            int threads = (chunks + 31) / 32 * 32;
            int gridX = Math.min(a.tokens(), Math.max(1, (ROPE_TOKEN_TARGET_BLOCKS + a.batch() - 1) / a.batch()));
            int sharedBytes = 2 * heads * (a.dh() / ROPE_TOKEN_CHUNK) * Float.BYTES; // Σx² of each q and k chunk
            kernel.launch(stream, gridX, a.batch(), 1, threads, 1, 1, sharedBytes, args);
            return;
        }
        int warpsPerBlock = ROPE_BLOCK / 32;
        int grid = (int) Math.min((headVectors + warpsPerBlock - 1) / warpsPerBlock, CudaNetworkOps.MAX_GRID);
        Kernel kernel = bf16Out ? (bf16In ? qkNormRopeBf16 : qkNormRopeF32Bf16Out)
                : (bf16In ? qkNormRopeBf16F32Out : qkNormRope);
        kernel.launch(stream, grid, 1, 1, ROPE_BLOCK, 1, 1, 0, args);
    }

    /**
     * The rules of {@link #qkNormRope} for its JVP (which names itself {@code op} in the messages): qkv f32, q, k, v
     * all f32 or all bf16.
     */
    QkNormRopeArgs checkQkNormRope(String op, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps,
                                   Tensor ropeCos, Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor rstd) {
        return checkQkNormRope(op, qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, rstd, false);
    }

    /** The rules of {@link #qkNormRope}; {@code bf16Forms} admits a bf16 qkv (the forward's; the JVP's is f32). */
    private QkNormRopeArgs checkQkNormRope(String op, Tensor qkv, int heads, Tensor qWeight, Tensor kWeight,
                                           float eps, Tensor ropeCos, Tensor ropeSin, Tensor q, Tensor k, Tensor v,
                                           Tensor rstd, boolean bf16Forms) {
        CudaTensor in, qo, ko, vo;
        if (bf16Forms) {
            in = check.floating(op, "qkv", qkv);
            qo = check.floating(op, "q", q);
            ko = check.floating(op, "k", k);
            vo = check.floating(op, "v", v);
            NetworkChecks.qkvDTypes(op, in, qo, ko, vo);
        } else {
            in = check.f32(op, "qkv", qkv);
            qo = check.floating(op, "q", q);
            ko = check.floating(op, "k", k);
            vo = check.floating(op, "v", v);
            NetworkChecks.qkvDTypes(op, in, qo, ko, vo);
        }
        CudaTensor qw = qWeight == null ? null : check.f32(op, "qWeight", qWeight);
        CudaTensor kw = kWeight == null ? null : check.f32(op, "kWeight", kWeight);
        CudaTensor cos = ropeCos == null ? null : check.f32(op, "ropeCos", ropeCos);
        CudaTensor sin = ropeSin == null ? null : check.f32(op, "ropeSin", ropeSin);
        CudaTensor r = rstd == null ? null : check.f32(op, "rstd", rstd);
        int dh = NetworkChecks.qkNormRope(op, in, heads, qw, kw, eps, cos, sin, qo, ko, vo, r);
        int b = in.dim(0), t = in.dim(1);
        // The kernel moves channel pairs (float2, or one 32-bit word of two bf16) and keeps a head vector in one
        // warp's registers.
        if (dh % 2 != 0 || dh > ROPE_MAX_HEAD_DIM) {
            throw new ShapeException(op + ": the CUDA kernel needs an even head dimension <= " + ROPE_MAX_HEAD_DIM
                    + "; qkv " + in.describe() + " with " + heads + " heads has dh = " + dh);
        }
        if (!CudaNetworkChecks.aligned(8, in, qo, ko, vo, cos, sin)) {
            // 8 covers both pair widths (device buffers start on 256-byte boundaries; a view could break this).
            throw new IllegalStateException(op + ": qkv, q, k, v and the RoPE tables must start on 8-byte boundaries "
                    + "(device buffers always do): " + in.describe() + ", " + qo.describe() + ", " + ko.describe()
                    + ", " + vo.describe());
        }
        return new QkNormRopeArgs(in, qo, ko, vo, qw, kw, cos, sin, r, b, t, dh);
    }

    void attention(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse) {
        String op = "attention";
        AttentionArgs a = checkAttention(op, q, k, v, scale, out, lse);
        CudaTensor qs = a.q(), ks = a.k(), vs = a.v(), o = a.out(), l = a.lse();
        if (qs.dtype() == DType.BF16) {
            tensorCore.forward(op, qs, ks, vs, scale, o, l);
            return;
        }
        int b = qs.dim(0), heads = qs.dim(1), t = qs.dim(2), dh = qs.dim(3);
        Kernel kernel = attentionByHeadDim.get(dh);
        if (kernel == null) {
            throw new ShapeException(op + ": q " + qs.describe() + " has head dimension " + dh
                    + "; the CUDA kernel exists for " + Arrays.toString(SUPPORTED_HEAD_DIMS)
                    + " (add an instantiation in kernels/attention.cu)");
        }
        long blocks = (long) ((t + ATTENTION_ROWS - 1) / ATTENTION_ROWS) * b * heads;
        if (blocks == 0) {
            return;
        }
        if (blocks > Integer.MAX_VALUE) {
            throw new ShapeException(op + ": q " + qs.describe() + " needs " + blocks + " blocks, more than one "
                    + "launch takes");
        }
        kernel.launch(stream, (int) blocks, 1, 1, ATTENTION_THREADS, 1, 1, 0, qs.address(), ks.address(), vs.address(),
                o.address(), addressOrNull(l), heads, t, scale);
    }

    /**
     * The rules of {@link #attention} (shared with its JVP): q, k, v all F32 (fp32 kernel, out F32) or all BF16
     * (tensor-core kernel, out F32 or BF16), lse F32 (NetworkChecks.attentionDTypes).
     */
    AttentionArgs checkAttention(String op, Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse) {
        CudaTensor qs = check.floating(op, "q", q), ks = check.floating(op, "k", k);
        CudaTensor vs = check.floating(op, "v", v), o = check.floating(op, "out", out);
        CudaTensor l = lse == null ? null : check.f32(op, "lse", lse);
        NetworkChecks.attention(op, qs, ks, vs, scale, o, l);
        if (!aligned16(qs, ks, vs, o)) {
            throw new IllegalStateException(op + ": q, k, v and out must start on 16-byte boundaries (device buffers "
                    + "always do): " + qs.describe() + ", " + ks.describe() + ", " + vs.describe() + ", "
                    + o.describe());
        }
        return new AttentionArgs(qs, ks, vs, o, l);
    }
}
