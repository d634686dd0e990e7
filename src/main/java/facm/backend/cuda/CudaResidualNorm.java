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
 * Launcher of kernels/residual_norm.cu: {@link facm.tensor.NetworkOps#gatedResidualRmsNormModulate} in one pass over
 * the rows (h read and written once, out written once). Shapes the fused kernel does not take (D % 4 != 0, D > 2048,
 * unaligned views) run the two ops of {@link CudaNetworkOps} in sequence, which the fused kernel matches bit for bit.
 */
final class CudaResidualNorm {
    /** One warp per row, 8 rows a block (as rmsnorm_fwd). */
    private static final int BLOCK = 256;
    /** RESNORM_CACHE float4 per lane in kernels/residual_norm.cu. */
    private static final int MAX_D = 32 * 16 * 4;
    /** RESNORM_CACHE_SMALL: the _c9 kernels (fewer registers, 4 blocks per SM; same bits) take D up to this. */
    private static final int MAX_D_SMALL = 32 * 9 * 4;

    private final CudaNetworkChecks check;
    private final CudaStream stream;
    /** Indexed by [a is bf16][out is bf16]. */
    private final Kernel[][] kernels = new Kernel[2][2];
    /** The _c9 forms, same indexing. */
    private final Kernel[][] smallKernels = new Kernel[2][2];

    CudaResidualNorm(CudaNetworkChecks check, KernelLibrary lib, CudaStream stream) {
        this.check = check;
        this.stream = stream;
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

    /**
     * Checks the arguments (NetworkChecks.gatedResidualRmsNormModulate) and launches the fused kernel; returns false
     * without touching anything when the shape or alignment needs the two-op path.
     */
    boolean tryFused(Tensor h, Tensor a, Tensor mod, int gateChunk, Tensor weight, float eps, Tensor mod2,
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
