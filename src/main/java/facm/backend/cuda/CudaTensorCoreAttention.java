package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.tensor.DType;
import facm.tensor.ShapeException;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import static facm.backend.cuda.CudaNetworkChecks.addressOrNull;
import static facm.backend.cuda.CudaNetworkChecks.aligned16;
import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.PTR;

/**
 * Launchers of the bf16 tensor-core attention kernels (kernels/attention_tc.cu forward, attention_tc_bwd.cu backward,
 * attention_tc_jvp.cu JVP): what {@link CudaAttention}, {@link CudaAttentionBackward} and {@link CudaAttentionJvp}
 * dispatch to when q, k, v are BF16. The callers have checked shapes, storage sharing and dtypes (NetworkChecks); this
 * class checks what the kernels themselves need (head dimension, alignment, grid size) and launches.
 * Kernels are looked up on first use per head dimension and kept, so a library without the tensor-core modules only
 * fails when a BF16 attention is actually asked for, with the kernel's name in the message.
 */
final class CudaTensorCoreAttention {
    /** Head dimensions with attention_{fwd,bwd_dq,bwd_dkdv,jvp}_bf16_dh&lt;dh&gt; kernels. */
    static final int[] SUPPORTED_HEAD_DIMS = {16, 32, 64, 72, 128};
    /** Query (or key) rows per block and threads per block of the backward and JVP (TC_ROWS, TC_THREADS in
     * attention_tc_common.cuh). */
    private static final int ROWS = 64;
    private static final int THREADS = 128;
    /** Threads per block of the forward (TcFwdTiling::THREADS in kernels/attention_tc.cu: 4 warps; it traps on
     * another block size). */
    private static final int FORWARD_THREADS = 128;

    /**
     * Query rows per block of the forward, TcFwdTiling&lt;dh&gt;::ROWS in kernels/attention_tc.cu: 4 warps of two
     * 16-row m tiles for dh &le; 80, of one for dh 128 (two would not fit the registers).
     */
    static int forwardRows(int dh) {
        return dh <= 80 ? 128 : 64;
    }

    /** The four kernels of one head dimension. */
    private record HeadDimKernels(Kernel forward, Kernel backwardDq, Kernel backwardDkDv, Kernel jvp) {
    }

    private final KernelLibrary lib;
    private final CudaStream stream;
    private final Map<Integer, HeadDimKernels> byHeadDim = new HashMap<>();

    CudaTensorCoreAttention(KernelLibrary lib, CudaStream stream) {
        this.lib = lib;
        this.stream = stream;
    }

    /** q, k, v BF16 [B,H,T,dh]; out [B,T,H·dh] F32 or BF16; lse F32 [B,H,T] or null. */
    void forward(String op, CudaTensor q, CudaTensor k, CudaTensor v, float scale, CudaTensor out, CudaTensor lse) {
        int b = q.dim(0), heads = q.dim(1), t = q.dim(2), dh = q.dim(3);
        HeadDimKernels kernels = kernels(op, q, dh);
        requireAligned(op, q, k, v, out);
        int blocks = blocks(op, q, b, heads, t, forwardRows(dh));
        if (blocks == 0) {
            return;
        }
        kernels.forward().launch(stream, blocks, 1, 1, FORWARD_THREADS, 1, 1, 0, q.address(), k.address(), v.address(),
                out.address(), addressOrNull(lse), heads, t, scale, isBf16(out));
    }

    /** Scratch regions of {@link #backward} in bytes: D_i fp32 [B,H,T], gradOut as bf16 [B,H,T,dh]. */
    static long[] backwardScratch(CudaTensor q) {
        long rows = (long) q.dim(0) * q.dim(1) * q.dim(2);
        return new long[] {rows * Float.BYTES, rows * q.dim(3) * 2L};
    }

    /**
     * The deterministic two-kernel backward: dq (also writes D_i to {@code delta} and gradOut rounded to bf16,
     * head-major, to {@code dOBf16}: the caller's scratch of {@link #backwardScratch} sizes), then dkdv unless both
     * gradK and gradV are null. out and gradOut F32 or BF16; grads F32 or null.
     */
    void backward(String op, CudaTensor q, CudaTensor k, CudaTensor v, float scale, CudaTensor out, CudaTensor lse,
                  CudaTensor gradOut, CudaTensor gradQ, CudaTensor gradK, CudaTensor gradV, long delta, long dOBf16) {
        int b = q.dim(0), heads = q.dim(1), t = q.dim(2), dh = q.dim(3);
        HeadDimKernels kernels = kernels(op, q, dh);
        requireAligned(op, q, k, v, out, gradOut, lse, gradQ, gradK, gradV);
        int blocks = blocks(op, q, b, heads, t, ROWS);
        if (blocks == 0 || (gradQ == null && gradK == null && gradV == null)) {
            return;
        }
        if (delta == 0L || dOBf16 == 0L || (dOBf16 & 15L) != 0) {
            throw new IllegalStateException(op + ": bad backward scratch for q " + q.describe() + ": delta 0x"
                    + Long.toHexString(delta) + ", dOBf16 0x" + Long.toHexString(dOBf16) + " (16-byte aligned)");
        }
        kernels.backwardDq().launch(stream, blocks, 1, 1, THREADS, 1, 1, 0, q.address(), k.address(), v.address(),
                out.address(), lse.address(), gradOut.address(), addressOrNull(gradQ), delta, dOBf16, heads, t,
                scale, isBf16(out), isBf16(gradOut));
        if (gradK != null || gradV != null) {
            kernels.backwardDkDv().launch(stream, blocks, 1, 1, THREADS, 1, 1, 0, q.address(), k.address(),
                    v.address(), lse.address(), dOBf16, delta, addressOrNull(gradK), addressOrNull(gradV), heads, t,
                    scale);
        }
    }

    /** q, k, v and the tangents (each may be null: zero) BF16; out and outDot of one dtype, F32 or BF16; lse F32. */
    void jvp(String op, CudaTensor q, CudaTensor k, CudaTensor v, CudaTensor qDot, CudaTensor kDot, CudaTensor vDot,
             float scale, CudaTensor out, CudaTensor outDot, CudaTensor lse) {
        int b = q.dim(0), heads = q.dim(1), t = q.dim(2), dh = q.dim(3);
        if (out.dtype() != outDot.dtype()) {
            throw new ShapeException(op + ": the tensor-core kernel writes out and outDot in one dtype; got "
                    + out.describe() + " and " + outDot.describe());
        }
        HeadDimKernels kernels = kernels(op, q, dh);
        requireAligned(op, q, k, v, qDot, kDot, vDot, out, outDot, lse);
        int blocks = blocks(op, q, b, heads, t, ROWS);
        if (blocks == 0) {
            return;
        }
        kernels.jvp().launch(stream, blocks, 1, 1, THREADS, 1, 1, 0, q.address(), k.address(), v.address(),
                addressOrNull(qDot), addressOrNull(kDot), addressOrNull(vDot), out.address(), outDot.address(),
                addressOrNull(lse), heads, t, scale, isBf16(out));
    }

    private HeadDimKernels kernels(String op, CudaTensor q, int dh) {
        HeadDimKernels k = byHeadDim.get(dh);
        if (k != null) {
            return k;
        }
        if (Arrays.stream(SUPPORTED_HEAD_DIMS).noneMatch(d -> d == dh)) {
            throw new ShapeException(op + ": q " + q.describe() + " has head dimension " + dh
                    + "; the bf16 tensor-core attention kernels exist for " + Arrays.toString(SUPPORTED_HEAD_DIMS)
                    + " (add an instantiation in kernels/attention_tc*.cu)");
        }
        k = new HeadDimKernels(
                lib.kernel("attention_fwd_bf16_dh" + dh, PTR, PTR, PTR, PTR, PTR, I32, I32, F32, I32),
                lib.kernel("attention_bwd_dq_bf16_dh" + dh, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32,
                        F32, I32, I32),
                lib.kernel("attention_bwd_dkdv_bf16_dh" + dh, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, F32),
                lib.kernel("attention_jvp_bf16_dh" + dh, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, F32,
                        I32));
        byHeadDim.put(dh, k);
        return k;
    }

    /** ceil(T / rows)·B·H blocks: rows per block is 64 for the backward and JVP, {@link #forwardRows} for the forward. */
    private static int blocks(String op, CudaTensor q, int b, int heads, int t, int rows) {
        long blocks = (long) ((t + rows - 1) / rows) * b * heads;
        if (blocks > Integer.MAX_VALUE) {
            throw new ShapeException(op + ": q " + q.describe() + " needs " + blocks + " blocks, more than one "
                    + "launch takes");
        }
        return (int) blocks;
    }

    /** The kernels move 16-byte pieces of q, k, v (cp.async) and pairs of out, gradOut, lse, the gradients. */
    private static void requireAligned(String op, CudaTensor... ts) {
        if (!aligned16(ts)) {
            StringBuilder names = new StringBuilder();
            for (CudaTensor t : ts) {
                if (t != null) {
                    names.append(names.isEmpty() ? "" : ", ").append(t.describe()).append(" @ 0x")
                            .append(Long.toHexString(t.address()));
                }
            }
            throw new IllegalStateException(op + ": the bf16 tensor-core attention kernels need every tensor to start "
                    + "on a 16-byte boundary (device buffers always do): " + names);
        }
    }

    private static int isBf16(CudaTensor t) {
        return t.dtype() == DType.BF16 ? 1 : 0;
    }
}
