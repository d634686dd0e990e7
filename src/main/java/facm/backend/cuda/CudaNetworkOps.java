package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.DeviceArena;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.tensor.DType;
import facm.tensor.NetworkChecks;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;

import static facm.backend.cuda.CudaNetworkChecks.aligned16;
import static facm.tensor.Shapes.requireNoSharing;
import static facm.cuda.KernelArg.F64;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * The LightningDiT layers (facm-spec.md §3, contract {@link NetworkOps}) on the GPU: launchers for kernels/embed.cu
 * and swiglu.cu here, the norms and the gated residual (rmsnorm.cu, adaln.cu, residual_norm.cu) in
 * {@link CudaResidualNorm}, kernels/rope.cu and attention.cu in {@link CudaAttention}; the backward
 * passes in {@link CudaLayerBackward}, {@link CudaNormBackward} and {@link CudaAttentionBackward}. Every op checks
 * its arguments like the CPU reference (same rules and messages), then queues its kernels on the device's main stream
 * and returns: no host synchronization, and no allocation except the scratch buffers of the backward passes, which
 * grow to the largest shape seen and are then reused ({@link ScratchBuffer}; {@link #close()} returns them).
 *
 * <p>Backward numerics: fp32 throughout, reductions in an order fixed by the shape, so every gradient is
 * bit-identical from run to run (no atomics anywhere, including the attention backward).
 *
 * <p>Differences from the CPU reference, all within the tolerances the gpu tests state: fp32 statistics and
 * accumulation instead of fp64; and {@link #embedding} cannot check the ids without a host round trip, so an id
 * outside {@code [0, V)} yields a NaN row instead of an exception.
 */
public final class CudaNetworkOps implements NetworkOps, AutoCloseable {
    /** Cap on blocks for grid-stride kernels: enough to fill any current GPU many times over. */
    static final int MAX_GRID = 65_535 * 8;
    private static final int ELEMENTWISE_BLOCK = 256;

    /** Module names of kernels/attention_tc*.cu: all three present means bf16 attention in every direction. */
    private static final java.util.List<String> TENSOR_CORE_ATTENTION_MODULES =
            java.util.List.of("attention_tc", "attention_tc_bwd", "attention_tc_jvp");

    private final CudaNetworkChecks check;
    private final boolean tensorCoreAttention;
    private final CudaStream stream;
    private final CudaAttention attention;
    /** RMSNorm-modulate, the gated residual and the two fused (kernels/rmsnorm.cu, adaln.cu, residual_norm.cu). */
    private final CudaResidualNorm norms;
    private final CudaLayerBackward layerBackward;
    private final CudaNormBackward normBackward;
    private final CudaAttentionBackward attentionBackward;
    private final CudaNetworkJvp jvp;
    private final CudaAttentionJvp attentionJvp;
    private final Kernel patchify;
    private final Kernel unpatchify;
    private final Kernel timestep;
    private final Kernel embedding;
    private final Kernel swiglu;
    private final Kernel swigluVec4;
    private final Kernel swigluBf16;
    private final Kernel swigluBf16Vec8;
    private final Kernel swigluBf16F32Out;
    private final Kernel swigluBf16F32OutVec8;
    private final Kernel swigluF32Bf16Out;
    private final Kernel swigluF32Bf16OutVec4;

    public CudaNetworkOps(CudaBackend backend) {
        this.check = new CudaNetworkChecks(backend);
        KernelLibrary lib = backend.cudaDevice().kernels();
        this.stream = backend.cudaDevice().stream();
        this.tensorCoreAttention = lib.buildInfo().modules().containsAll(TENSOR_CORE_ATTENTION_MODULES);
        this.attention = new CudaAttention(check, lib, stream);
        this.norms = new CudaResidualNorm(check, lib, stream);
        PartialSums sums = new PartialSums(lib, stream);
        DeviceArena arena = backend.cudaDevice().arena();
        this.layerBackward = new CudaLayerBackward(check, lib, stream);
        this.normBackward = new CudaNormBackward(check, lib, stream, sums, new ScratchBuffer(arena, "norm backward"));
        this.attentionBackward = new CudaAttentionBackward(check, lib, stream, sums,
                new ScratchBuffer(arena, "attention backward"));
        this.jvp = new CudaNetworkJvp(check, lib, stream);
        this.attentionJvp = new CudaAttentionJvp(check, attention, lib, stream);
        patchify = lib.kernel("patchify_fwd", PTR, PTR, I32, I32, I32, I32, I32);
        unpatchify = lib.kernel("unpatchify_fwd", PTR, PTR, I32, I32, I32, I32, I32);
        timestep = lib.kernel("timestep_embedding_fwd", PTR, PTR, I32, I32, F64);
        embedding = lib.kernel("embedding_fwd", PTR, PTR, PTR, I32, I32, I32);
        swiglu = lib.kernel("swiglu_fwd", PTR, PTR, I64, I32);
        swigluVec4 = lib.kernel("swiglu_fwd_vec4", PTR, PTR, I64, I32);
        swigluBf16 = lib.kernel("swiglu_fwd_bf16", PTR, PTR, I64, I32);
        swigluBf16Vec8 = lib.kernel("swiglu_fwd_bf16_vec8", PTR, PTR, I64, I32);
        swigluBf16F32Out = lib.kernel("swiglu_fwd_bf16_f32out", PTR, PTR, I64, I32);
        swigluBf16F32OutVec8 = lib.kernel("swiglu_fwd_bf16_f32out_vec8", PTR, PTR, I64, I32);
        swigluF32Bf16Out = lib.kernel("swiglu_fwd_bf16out", PTR, PTR, I64, I32);
        swigluF32Bf16OutVec4 = lib.kernel("swiglu_fwd_vec4_bf16out", PTR, PTR, I64, I32);
    }

    // ---------------------------------------------------------------- layout: patches, time features, embedding

    @Override
    public void patchify(Tensor x, int patch, Tensor out) {
        String op = "patchify";
        CudaTensor in = check.f32(op, "x", x);
        CudaTensor o = check.f32(op, "out", out);
        NetworkChecks.patches(op, "x", in, "out", o, patch, "C·p·p");
        int b = in.dim(0), c = in.dim(1), h = in.dim(2), w = in.dim(3);
        if (o.numel() > 0) {
            patchify.launch1d(stream, o.numel(), ELEMENTWISE_BLOCK, in.address(), o.address(), b, c, h, w, patch);
        }
    }

    @Override
    public void unpatchify(Tensor tokens, int patch, Tensor out) {
        String op = "unpatchify";
        CudaTensor in = check.f32(op, "tokens", tokens);
        CudaTensor o = check.f32(op, "out", out);
        NetworkChecks.patches(op, "out", o, "tokens", in, patch, "p·p·C");
        int b = o.dim(0), c = o.dim(1), h = o.dim(2), w = o.dim(3);
        if (o.numel() > 0) {
            unpatchify.launch1d(stream, o.numel(), ELEMENTWISE_BLOCK, in.address(), o.address(), b, c, h, w, patch);
        }
    }

    @Override
    public void timestepEmbedding(Tensor t, float maxPeriod, Tensor out) {
        String op = "timestepEmbedding";
        CudaTensor times = check.f32(op, "t", t);
        CudaTensor o = check.f32(op, "out", out);
        NetworkChecks.timestepEmbedding(op, times, maxPeriod, o);
        int b = times.dim(0), dim = o.dim(1);
        if (o.numel() > 0) {
            timestep.launch1d(stream, o.numel(), ELEMENTWISE_BLOCK, times.address(), o.address(), b, dim,
                    Math.log(maxPeriod));
        }
    }

    @Override
    public void embedding(Tensor table, Tensor ids, Tensor out) {
        String op = "embedding";
        CudaTensor tab = check.f32(op, "table", table);
        CudaTensor idt = check.i32(op, "ids", ids);
        CudaTensor o = check.f32(op, "out", out);
        NetworkChecks.embedding(op, tab, idt, o);
        int rows = tab.dim(0), d = tab.dim(1), b = idt.dim(0);
        if (o.numel() > 0) {
            embedding.launch1d(stream, o.numel(), ELEMENTWISE_BLOCK, tab.address(), idt.address(), o.address(), b, d,
                    rows);
        }
    }

    // ---------------------------------------------------------------- norms and modulation

    @Override
    public void rmsNormModulate(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk, int scaleChunk,
                                Tensor out, Tensor rstd) {
        norms.rmsNormModulate(x, weight, eps, mod, shiftChunk, scaleChunk, out, rstd);
    }

    @Override
    public void gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk) {
        norms.gatedResidual(h, a, mod, gateChunk);
    }

    @Override
    public void gatedResidualRmsNormModulate(Tensor h, Tensor a, Tensor mod, int gateChunk, Tensor weight, float eps,
                                             Tensor mod2, int shiftChunk, int scaleChunk, Tensor out, Tensor rstd) {
        norms.gatedResidualRmsNormModulate(h, a, mod, gateChunk, weight, eps, mod2, shiftChunk, scaleChunk, out,
                rstd);
    }

    // ---------------------------------------------------------------- attention (kernels/rope.cu, attention.cu)

    @Override
    public void qkNormRope(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                           Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor rstd) {
        attention.qkNormRope(qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, rstd);
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse) {
        attention.attention(q, k, v, scale, out, lse);
    }

    /**
     * F32 always; BF16 when the library holds the tensor-core attention modules (forward, backward, JVP), which
     * {@link CudaAttention} and its twins dispatch bf16 q, k, v to.
     */
    @Override
    public boolean attentionTakes(DType dtype) {
        return dtype == DType.F32 || (dtype == DType.BF16 && tensorCoreAttention);
    }

    // ---------------------------------------------------------------- MLP

    /**
     * gu F32 → out F32, or BF16 (a bf16 training pass: the w3 GEMM's operand, equal to the f32 kernel's output cast);
     * gu BF16 (the bf16 w12 GEMM's output) → out BF16 (the w3 GEMM's operand) or F32.
     */
    @Override
    public void swiglu(Tensor gu, Tensor out) {
        String op = "swiglu";
        CudaTensor in = check.floating(op, "gu", gu);
        CudaTensor o = check.floating(op, "out", out);
        NetworkChecks.swigluDTypes(op, in, o);
        int f = NetworkChecks.swigluWidth(op, in, "out", o);
        requireNoSharing(op, o, in);
        long rows = o.numel() / f;
        if (rows == 0) {
            return;
        }
        int grid = (int) Math.min(rows, MAX_GRID);
        if (in.dtype() == DType.F32) {
            boolean vec4 = f % 4 == 0 && aligned16(in, o);
            Kernel kernel = o.dtype() == DType.BF16 ? (vec4 ? swigluF32Bf16OutVec4 : swigluF32Bf16Out)
                    : (vec4 ? swigluVec4 : swiglu);
            kernel.launch(stream, grid, 1, 1, rowBlock(vec4 ? f / 4 : f), 1, 1, 0, in.address(), o.address(), rows,
                    f);
            return;
        }
        // 8 bf16 (16 bytes) of g and of u per thread and step; row starts stay 16-byte aligned when F % 8 == 0.
        boolean vec8 = f % 8 == 0 && aligned16(in, o);
        boolean bf16Out = o.dtype() == DType.BF16;
        Kernel kernel = bf16Out ? (vec8 ? swigluBf16Vec8 : swigluBf16)
                : (vec8 ? swigluBf16F32OutVec8 : swigluBf16F32Out);
        kernel.launch(stream, grid, 1, 1, rowBlock(vec8 ? f / 8 : f), 1, 1, 0, in.address(), o.address(), rows, f);
    }

    // ---------------------------------------------------------------- backward

    @Override
    public void patchifyBackward(Tensor gradTokens, int patch, Tensor gradX) {
        layerBackward.patchifyBackward(gradTokens, patch, gradX);
    }

    @Override
    public void unpatchifyBackward(Tensor gradOut, int patch, Tensor gradTokens) {
        layerBackward.unpatchifyBackward(gradOut, patch, gradTokens);
    }

    @Override
    public void embeddingBackward(Tensor gradOut, Tensor ids, Tensor gradTable) {
        layerBackward.embeddingBackward(gradOut, ids, gradTable);
    }

    @Override
    public void rmsNormModulateBackward(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk,
                                        int scaleChunk, Tensor rstd, Tensor gradOut, Tensor gradX, Tensor gradWeight,
                                        Tensor gradMod) {
        normBackward.rmsNormModulateBackward(x, weight, eps, mod, shiftChunk, scaleChunk, rstd, gradOut, gradX,
                gradWeight, gradMod);
    }

    @Override
    public void gatedResidualBackward(Tensor a, Tensor mod, int gateChunk, Tensor gradH, Tensor gradA,
                                      Tensor gradMod) {
        normBackward.gatedResidualBackward(a, mod, gateChunk, gradH, gradA, gradMod);
    }

    @Override
    public void qkNormRopeBackward(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                                   Tensor ropeSin, Tensor rstd, Tensor gradQ, Tensor gradK, Tensor gradV,
                                   Tensor gradQkv, Tensor gradQWeight, Tensor gradKWeight) {
        attentionBackward.qkNormRopeBackward(qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, rstd, gradQ, gradK,
                gradV, gradQkv, gradQWeight, gradKWeight);
    }

    @Override
    public void attentionBackward(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse, Tensor gradOut,
                                  Tensor gradQ, Tensor gradK, Tensor gradV) {
        attentionBackward.attentionBackward(q, k, v, scale, out, lse, gradOut, gradQ, gradK, gradV);
    }

    @Override
    public void swigluBackward(Tensor gu, Tensor gradOut, Tensor gradGu) {
        layerBackward.swigluBackward(gu, gradOut, gradGu);
    }

    @Override
    public void siluBackward(Tensor x, Tensor gradOut, Tensor gradIn) {
        layerBackward.siluBackward(x, gradOut, gradIn);
    }

    // ---------------------------------------------------------------- forward mode (JVP, CudaNetworkJvp, CudaAttentionJvp)

    @Override
    public void timestepEmbeddingJvp(Tensor t, Tensor tDot, float maxPeriod, Tensor out, Tensor outDot) {
        jvp.timestepEmbeddingJvp(t, tDot, maxPeriod, out, outDot);
    }

    @Override
    public void siluJvp(Tensor x, Tensor xDot, Tensor out, Tensor outDot) {
        jvp.siluJvp(x, xDot, out, outDot);
    }

    @Override
    public void rmsNormModulateJvp(Tensor x, Tensor xDot, Tensor weight, float eps, Tensor mod, Tensor modDot,
                                   int shiftChunk, int scaleChunk, Tensor out, Tensor outDot, Tensor rstd) {
        jvp.rmsNormModulateJvp(x, xDot, weight, eps, mod, modDot, shiftChunk, scaleChunk, out, outDot, rstd);
    }

    @Override
    public void gatedResidualJvp(Tensor h, Tensor hDot, Tensor a, Tensor aDot, Tensor mod, Tensor modDot,
                                 int gateChunk) {
        jvp.gatedResidualJvp(h, hDot, a, aDot, mod, modDot, gateChunk);
    }

    @Override
    public void qkNormRopeJvp(Tensor qkv, Tensor qkvDot, int heads, Tensor qWeight, Tensor kWeight, float eps,
                              Tensor ropeCos, Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot,
                              Tensor vDot, Tensor rstd) {
        attentionJvp.qkNormRopeJvp(qkv, qkvDot, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, qDot, kDot,
                vDot, rstd);
    }

    @Override
    public void attentionJvp(Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot, Tensor vDot, float scale,
                             Tensor out, Tensor outDot, Tensor lse) {
        attentionJvp.attentionJvp(q, k, v, qDot, kDot, vDot, scale, out, outDot, lse);
    }

    @Override
    public void swigluJvp(Tensor gu, Tensor guDot, Tensor out, Tensor outDot) {
        jvp.swigluJvp(gu, guDot, out, outDot);
    }

    /**
     * Returns the backward passes' scratch buffers to the device arena (queued work that uses them is already on the
     * stream, so this is safe at any time). The ops stay usable: the next backward call allocates again.
     */
    @Override
    public void close() {
        normBackward.close();
        attentionBackward.close();
    }

    /**
     * Threads for the row-per-block kernels, whose threads stride over {@code units} items of one row: as few passes
     * as 512 threads allow, and the items spread evenly over them (D = 1152 as float4: 288 threads, one pass;
     * F = 3072: 2 passes of 384), in whole warps.
     */
    static int rowBlock(int units) {
        int passes = Math.max(1, (units + 511) / 512);
        int perPass = (units + passes - 1) / passes;
        return Math.max(32, Math.min(512, (perPass + 31) / 32 * 32));
    }
}
