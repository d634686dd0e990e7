package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelArg;
import facm.cuda.KernelLibrary;
import facm.tensor.DType;
import facm.tensor.NetworkChecks;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import static facm.backend.cuda.CudaNetworkChecks.addressOrNull;
import static facm.backend.cuda.CudaNetworkChecks.aligned16;
import static facm.tensor.Shapes.requireNoSharing;
import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.PTR;

/**
 * Forward-mode (JVP) launchers of the attention pair: qk-norm + RoPE with tangents (kernels/rope_grad.cu,
 * qk_norm_rope_jvp*) and the fused flash-style attention forward + tangent (kernels/attention_jvp.cu, one kernel per
 * head dimension, facm-spec.md §6.4). The primal arguments go through the forward launcher's own checks
 * ({@link CudaAttention#checkQkNormRope}, {@link CudaAttention#checkAttention}: same rules, messages naming the JVP op);
 * each tangent must have its primal's shape, and a null tangent input is passed as a null pointer (zero).
 */
final class CudaAttentionJvp {
    /** Query rows per block (ATTJ_ROWS); threads per block are 64·SPLIT, SPLIT = 2 for dh ≤ 80, else 4. */
    private static final int ROWS = 64;
    private static final int ROPE_BLOCK = 256;
    /** qk_norm_rope_jvp_tok*: a thread per 8-channel chunk of a token, at most 512 threads (launch bounds). */
    private static final int ROPE_TOKEN_CHUNK = 8;
    private static final int ROPE_TOKEN_MAX_THREADS = 512;
    /** Blocks a token-block launch aims at (they stride over tokens), as the forward's. */
    private static final int ROPE_TOKEN_TARGET_BLOCKS = 1056;
    private static final int MAX_GRID_Y = 65_535;

    private final CudaNetworkChecks check;
    private final CudaAttention attention;
    private final CudaStream stream;
    private final Kernel qkNormRope;
    private final Kernel qkNormRopeBf16Out;
    private final Kernel qkNormRopeTok;
    private final Kernel qkNormRopeTokBf16Out;
    private final Map<Integer, Kernel> attentionByHeadDim = new LinkedHashMap<>();

    CudaAttentionJvp(CudaNetworkChecks check, CudaAttention attention, KernelLibrary lib, CudaStream stream) {
        this.check = check;
        this.attention = attention;
        this.stream = stream;
        KernelArg[] rope = {PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32, F32};
        qkNormRope = lib.kernel("qk_norm_rope_jvp", rope);
        qkNormRopeBf16Out = lib.kernel("qk_norm_rope_jvp_bf16out", rope);
        qkNormRopeTok = lib.kernel("qk_norm_rope_jvp_tok", rope);
        qkNormRopeTokBf16Out = lib.kernel("qk_norm_rope_jvp_tok_bf16out", rope);
        for (int dh : CudaAttention.SUPPORTED_HEAD_DIMS) {
            attentionByHeadDim.put(dh, lib.kernel("attention_jvp_f32_dh" + dh, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR,
                    PTR, I32, I32, F32));
        }
    }

    static int threadsFor(int dh) {
        return dh <= 80 ? 2 * ROWS : 4 * ROWS;
    }

    private CudaTensor tangentLike(String op, String role, Tensor tangent, CudaTensor primal) {
        if (tangent == null) {
            return null;
        }
        CudaTensor t = check.floating(op, role, tangent);
        NetworkChecks.attentionTangent(op, role, t, primal);
        Shapes.requireSame(op + " (" + role + " vs " + primal.name() + ")", t, primal);
        return t;
    }

    void qkNormRopeJvp(Tensor qkv, Tensor qkvDot, int heads, Tensor qWeight, Tensor kWeight, float eps,
                       Tensor ropeCos, Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot,
                       Tensor vDot, Tensor rstd) {
        String op = "qkNormRopeJvp";
        CudaAttention.QkNormRopeArgs a = attention.checkQkNormRope(op, qkv, heads, qWeight, kWeight, eps, ropeCos,
                ropeSin, q, k, v, rstd);
        CudaTensor in = a.qkv();
        CudaTensor id = tangentLike(op, "qkvDot", qkvDot, in);
        // The tangents of the heads have the heads' dtype (bf16: the tensor-core attention JVP's operands).
        CudaTensor qd = check.floating(op, "qDot", qDot), kd = check.floating(op, "kDot", kDot);
        CudaTensor vd = check.floating(op, "vDot", vDot);
        for (CudaTensor tangent : new CudaTensor[] {qd, kd, vd}) {
            Shapes.requireDType(op + ": " + tangent.name() + " (like q " + a.q().describe() + ")", tangent,
                    a.q().dtype());
        }
        Shapes.requireSame(op + " (qDot vs q)", qd, a.q());
        Shapes.requireSame(op + " (kDot vs k)", kd, a.k());
        Shapes.requireSame(op + " (vDot vs v)", vd, a.v());
        for (CudaTensor out : new CudaTensor[] {qd, kd, vd}) {
            requireNoSharing(op, out, in, id, a.q(), a.k(), a.v(), a.rstd());
        }
        requireNoSharing(op, qd, kd, vd);
        requireNoSharing(op, kd, vd);
        for (CudaTensor out : new CudaTensor[] {a.q(), a.k(), a.v(), a.rstd()}) {
            if (out != null) {
                requireNoSharing(op, out, id);
            }
        }
        if (!CudaNetworkChecks.aligned(8, id, qd, kd, vd)) {
            throw new IllegalStateException(op + ": the tangents must start on 8-byte boundaries (device buffers "
                    + "always do)");
        }
        long headVectors = (long) a.batch() * a.tokens() * heads;
        if (headVectors == 0) {
            return;
        }
        boolean bf16 = a.q().dtype() == DType.BF16;
        int tokenThreads = (3 * heads * (a.dh() / ROPE_TOKEN_CHUNK) + 31) / 32 * 32;
        if (a.dh() % ROPE_TOKEN_CHUNK == 0 && tokenThreads <= ROPE_TOKEN_MAX_THREADS && a.batch() <= MAX_GRID_Y
                && headVectors < Integer.MAX_VALUE && CudaNetworkChecks.aligned16(in, id, qd, kd, vd, a.q(), a.k(),
                a.v(), a.qWeight(), a.kWeight(), a.cos(), a.sin())) {
            // Token blocks (the forward's conditions): the primal keeps the token-block forward's bits.
            int gx = Math.min(a.tokens(), Math.max(1, (ROPE_TOKEN_TARGET_BLOCKS + a.batch() - 1) / a.batch()));
            (bf16 ? qkNormRopeTokBf16Out : qkNormRopeTok).launch(stream, gx, a.batch(), 1, tokenThreads, 1, 1,
                    4 * heads * (a.dh() / ROPE_TOKEN_CHUNK) * Float.BYTES, in.address(), addressOrNull(id),
                    addressOrNull(a.qWeight()), addressOrNull(a.kWeight()), addressOrNull(a.cos()),
                    addressOrNull(a.sin()), a.q().address(), a.k().address(), a.v().address(), qd.address(),
                    kd.address(), vd.address(), addressOrNull(a.rstd()), a.batch(), a.tokens(), heads, a.dh(), eps);
            return;
        }
        int warpsPerBlock = ROPE_BLOCK / 32;
        int grid = (int) Math.min((headVectors + warpsPerBlock - 1) / warpsPerBlock, CudaNetworkOps.MAX_GRID);
        (bf16 ? qkNormRopeBf16Out : qkNormRope).launch(stream, grid, 1, 1, ROPE_BLOCK, 1, 1,
                0, in.address(), addressOrNull(id),
                addressOrNull(a.qWeight()), addressOrNull(a.kWeight()), addressOrNull(a.cos()), addressOrNull(a.sin()),
                a.q().address(), a.k().address(), a.v().address(), qd.address(), kd.address(), vd.address(),
                addressOrNull(a.rstd()), a.batch(), a.tokens(), heads, a.dh(), eps);
    }

    void attentionJvp(Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot, Tensor vDot, float scale, Tensor out,
                      Tensor outDot, Tensor lse) {
        String op = "attentionJvp";
        CudaAttention.AttentionArgs a = attention.checkAttention(op, q, k, v, scale, out, lse);
        CudaTensor qd = tangentLike(op, "qDot", qDot, a.q());
        CudaTensor kd = tangentLike(op, "kDot", kDot, a.q());
        CudaTensor vd = tangentLike(op, "vDot", vDot, a.q());
        CudaTensor od = check.floating(op, "outDot", outDot);
        NetworkChecks.attentionActivation(op, "outDot", od, a.q());
        Shapes.requireSame(op + " (outDot vs out)", od, a.out());
        requireNoSharing(op, od, a.q(), a.k(), a.v(), qd, kd, vd, a.out(), a.lse());
        requireNoSharing(op, a.out(), qd, kd, vd);
        if (a.lse() != null) {
            requireNoSharing(op, a.lse(), qd, kd, vd);
        }
        if (a.q().dtype() == DType.BF16) {
            attention.tensorCore().jvp(op, a.q(), a.k(), a.v(), qd, kd, vd, scale, a.out(), od, a.lse());
            return;
        }
        int dh = a.q().dim(3), b = a.q().dim(0), heads = a.q().dim(1), t = a.q().dim(2);
        Kernel kernel = attentionByHeadDim.get(dh);
        if (kernel == null) {
            throw new ShapeException(op + ": q " + a.q().describe() + " has head dimension " + dh
                    + "; the CUDA kernel exists for " + Arrays.toString(CudaAttention.SUPPORTED_HEAD_DIMS));
        }
        if (!aligned16(qd, kd, vd, od)) {
            throw new IllegalStateException(op + ": the tangents and outDot must start on 16-byte boundaries (device "
                    + "buffers always do)");
        }
        long blocks = (long) ((t + ROWS - 1) / ROWS) * b * heads;
        if (blocks == 0) {
            return;
        }
        if (blocks > Integer.MAX_VALUE) {
            throw new ShapeException(op + ": q " + a.q().describe() + " needs " + blocks + " blocks, more than one "
                    + "launch takes");
        }
        kernel.launch(stream, (int) blocks, 1, 1, threadsFor(dh), 1, 1, 0, a.q().address(), a.k().address(),
                a.v().address(), addressOrNull(qd), addressOrNull(kd), addressOrNull(vd), a.out().address(),
                od.address(), addressOrNull(a.lse()), heads, t, scale);
    }
}
