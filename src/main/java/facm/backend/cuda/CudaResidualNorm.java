package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelArg;
import facm.cuda.KernelLibrary;
import facm.tensor.DType;
import facm.tensor.NetworkChecks;
import facm.tensor.Tensor;

import static facm.backend.cuda.CudaNetworkChecks.addressOrNull;
import static facm.backend.cuda.CudaNetworkChecks.aligned;
import static facm.backend.cuda.CudaNetworkChecks.aligned16;
import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * The forward launchers of the norm and residual ops of {@link CudaNetworkOps}: RMSNorm-modulate (kernels/rmsnorm.cu),
 * the gated residual (kernels/adaln.cu) and the two fused in one pass over the rows (kernels/residual_norm.cu: h read
 * and written once, out written once). Shapes the fused kernel does not take (D % 4 != 0, D > 2048, unaligned views)
 * run the two ops in sequence, which the fused kernel matches bit for bit.
 */
final class CudaResidualNorm {
    /** rmsnorm_fwd* run one warp per row in blocks of 8 warps. */
    private static final int NORM_BLOCK = 256;
    /** Largest D for rmsnorm_fwd_vec4 (RMSNORM_CACHE float4 per lane in kernels/rmsnorm.cu); also the JVP's. */
    static final int NORM_VEC4_MAX_D = 32 * 16 * 4;
    /** One warp per row, 8 rows a block (as rmsnorm_fwd). */
    private static final int BLOCK = 256;
    /** RESNORM_CACHE float4 per lane in kernels/residual_norm.cu. */
    private static final int MAX_D = 32 * 16 * 4;
    /** RESNORM_CACHE_SMALL: the _c9 kernels (fewer registers, 4 blocks per SM; same bits) take D up to this. */
    private static final int MAX_D_SMALL = 32 * 9 * 4;

    private final CudaNetworkChecks check;
    private final CudaStream stream;
    private final Kernel rmsNorm;
    private final Kernel rmsNormVec4;
    private final Kernel rmsNormBf16Out;
    private final Kernel rmsNormVec4Bf16Out;
    private final Kernel gated;
    private final Kernel gatedVec4;
    private final Kernel gatedBf16A;
    private final Kernel gatedVec4Bf16A;
    /** Indexed by [a is bf16][out is bf16]. */
    private final Kernel[][] kernels = new Kernel[2][2];
    /** The _c9 forms, same indexing. */
    private final Kernel[][] smallKernels = new Kernel[2][2];

    CudaResidualNorm(CudaNetworkChecks check, KernelLibrary lib, CudaStream stream) {
        this.check = check;
        this.stream = stream;
        // A kernel and its vectorized twin share one signature.
        KernelArg[] norm = {PTR, PTR, PTR, PTR, PTR, I64, I32, I32, I64, I32, I32, F32};
        rmsNorm = lib.kernel("rmsnorm_fwd", norm);
        rmsNormVec4 = lib.kernel("rmsnorm_fwd_vec4", norm);
        rmsNormBf16Out = lib.kernel("rmsnorm_fwd_bf16out", norm);
        rmsNormVec4Bf16Out = lib.kernel("rmsnorm_fwd_vec4_bf16out", norm);
        KernelArg[] gate = {PTR, PTR, PTR, I64, I32, I32, I64, I32};
        gated = lib.kernel("gated_residual_fwd", gate);
        gatedVec4 = lib.kernel("gated_residual_fwd_vec4", gate);
        gatedBf16A = lib.kernel("gated_residual_fwd_bf16a", gate);
        gatedVec4Bf16A = lib.kernel("gated_residual_fwd_bf16a_vec4", gate);
        KernelArg[] sig = {PTR, PTR, PTR, PTR, PTR, PTR, PTR, I64, I32, I32, I64, I32, I64, I32, I32, F32};
        String[] dtypes = {"f32", "bf16"};
        for (int a = 0; a < 2; a++) {
            for (int o = 0; o < 2; o++) {
                kernels[a][o] = lib.kernel("gated_residual_rmsnorm_fwd_" + dtypes[a] + "_" + dtypes[o], sig);
                smallKernels[a][o] = lib.kernel("gated_residual_rmsnorm_fwd_" + dtypes[a] + "_" + dtypes[o] + "_c9",
                        sig);
            }
        }
    }

    /** out F32, or BF16 (each fp32 value rounded once: the operand of the next bf16 GEMM); x, weight, mod F32. */
    void rmsNormModulate(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk, int scaleChunk, Tensor out,
                         Tensor rstd) {
        String op = "rmsNormModulate";
        CudaTensor in = check.f32(op, "x", x);
        CudaTensor w = check.f32(op, "weight", weight);
        CudaTensor o = check.floating(op, "out", out);
        CudaTensor m = mod == null ? null : check.f32(op, "mod", mod);
        CudaTensor r = rstd == null ? null : check.f32(op, "rstd", rstd);
        NetworkChecks.rmsNormDTypes(op, in, o);
        NetworkChecks.rmsNormModulate(op, in, w, eps, m, shiftChunk, scaleChunk, o, r);
        int d = in.dim(-1);
        long rows = in.numel() / d;
        int tokens = m == null ? 1 : in.dim(1);
        if (rows == 0 || tokens == 0) {
            return;
        }
        boolean bf16 = o.dtype() == DType.BF16;
        boolean vec4 = d % 4 == 0 && d <= NORM_VEC4_MAX_D && aligned16(in, w, m)
                && CudaNetworkChecks.aligned(bf16 ? 8 : 16, o);
        Kernel kernel = bf16 ? (vec4 ? rmsNormVec4Bf16Out : rmsNormBf16Out) : (vec4 ? rmsNormVec4 : rmsNorm);
        long modStride = m == null ? 0 : m.dim(1);
        int grid = (int) Math.min((rows + NORM_BLOCK / 32 - 1) / (NORM_BLOCK / 32), CudaNetworkOps.MAX_GRID);
        kernel.launch(stream, grid, 1, 1, NORM_BLOCK, 1, 1, 0, in.address(), w.address(), addressOrNull(m),
                o.address(), addressOrNull(r), rows, d, tokens, modStride, shiftChunk * d, scaleChunk * d, eps);
    }

    /** h F32 += gate ⊙ a with a F32 or BF16 (widened exactly; the bf16 output of a GEMM). */
    void gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk) {
        String op = "gatedResidual";
        CudaTensor hs = check.f32(op, "h", h);
        CudaTensor as = check.floating(op, "a", a);
        CudaTensor m = check.f32(op, "mod", mod);
        NetworkChecks.gatedResidualDTypes(op, hs, as);
        NetworkChecks.gatedResidual(op, hs, as, m, gateChunk);
        int d = hs.dim(2);
        long rows = (long) hs.dim(0) * hs.dim(1);
        if (rows == 0) {
            return;
        }
        boolean bf16 = as.dtype() == DType.BF16;
        boolean vec4 = d % 4 == 0 && aligned16(hs, m) && CudaNetworkChecks.aligned(bf16 ? 8 : 16, as);
        Kernel kernel = bf16 ? (vec4 ? gatedVec4Bf16A : gatedBf16A) : (vec4 ? gatedVec4 : gated);
        kernel.launch(stream, (int) Math.min(rows, CudaNetworkOps.MAX_GRID), 1, 1, CudaNetworkOps.rowBlock(vec4 ? d / 4 : d), 1, 1, 0,
                hs.address(), as.address(), m.address(), rows, d, hs.dim(1), (long) m.dim(1), gateChunk * d);
    }

    /** One pass (kernels/residual_norm.cu) where the shape allows, else the two ops; the same bits either way. */
    void gatedResidualRmsNormModulate(Tensor h, Tensor a, Tensor mod, int gateChunk, Tensor weight, float eps,
                                      Tensor mod2, int shiftChunk, int scaleChunk, Tensor out, Tensor rstd) {
        if (!tryFused(h, a, mod, gateChunk, weight, eps, mod2, shiftChunk, scaleChunk, out, rstd)) {
            gatedResidual(h, a, mod, gateChunk);
            rmsNormModulate(h, weight, eps, mod2, shiftChunk, scaleChunk, out, rstd);
        }
    }

    /**
     * Checks the arguments (NetworkChecks.gatedResidualRmsNormModulate) and launches the fused kernel; returns false
     * without touching anything when the shape or alignment needs the two-op path.
     */
    private boolean tryFused(Tensor h, Tensor a, Tensor mod, int gateChunk, Tensor weight, float eps, Tensor mod2,
                     int shiftChunk, int scaleChunk, Tensor out, Tensor rstd) {
        String op = "gatedResidualRmsNormModulate";
        CudaTensor hs = check.f32(op, "h", h);
        CudaTensor as = check.floating(op, "a", a);
        CudaTensor m = check.f32(op, "mod", mod);
        CudaTensor w = check.f32(op, "weight", weight);
        CudaTensor m2 = mod2 == null ? null : check.f32(op, "mod2", mod2);
        CudaTensor o = check.floating(op, "out", out);
        CudaTensor r = rstd == null ? null : check.f32(op, "rstd", rstd);
        NetworkChecks.gatedResidualRmsNormModulate(op, hs, as, m, gateChunk, w, eps, m2, shiftChunk, scaleChunk, o, r);
        int d = hs.dim(2);
        int tokens = hs.dim(1);
        long rows = (long) hs.dim(0) * tokens;
        boolean bf16A = as.dtype() == DType.BF16;
        boolean bf16Out = o.dtype() == DType.BF16;
        boolean fits = d % 4 == 0 && d <= MAX_D && aligned16(hs, m, w, m2) && aligned(bf16A ? 8 : 16, as)
                && aligned(bf16Out ? 8 : 16, o);
        if (!fits) {
            return false;
        }
        if (rows == 0 || d == 0) {
            return true;
        }
        int grid = (int) Math.min((rows + BLOCK / 32 - 1) / (BLOCK / 32), CudaNetworkOps.MAX_GRID);
        (d <= MAX_D_SMALL ? smallKernels : kernels)[bf16A ? 1 : 0][bf16Out ? 1 : 0].launch(stream, grid, 1, 1, BLOCK, 1, 1, 0, hs.address(),
                as.address(), m.address(), w.address(), addressOrNull(m2), o.address(), addressOrNull(r), rows, d,
                tokens, (long) m.dim(1), gateChunk * d, m2 == null ? 0L : (long) m2.dim(1), shiftChunk * d,
                scaleChunk * d, eps);
        return true;
    }
}
