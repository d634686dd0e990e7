package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelArg;
import facm.cuda.KernelLibrary;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Objects;

import static facm.backend.cuda.CudaNetworkChecks.addressOrNull;
import static facm.backend.cuda.CudaNetworkChecks.aligned16;
import static facm.tensor.NetworkChecks.requireChunks;
import static facm.tensor.Shapes.requireNoSharing;
import static facm.tensor.Shapes.requireRank;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * Launchers of the backward passes of the normalization layers (contract: facm.tensor.NetworkOps): RMSNorm with
 * adaLN modulation (kernels/rmsnorm.cu) and the gated residual (kernels/adaln.cu). Activation gradients are
 * overwritten by row-local kernels; parameter gradients (weight, modulation chunks) are accumulated by the
 * deterministic segment reductions of {@link PartialSums}, whose partials live in this object's {@link ScratchBuffer}.
 *
 * <p>Rules as in the CPU reference (facm.backend.cpu.CpuNetworkBackward): the forward's rstd is required; gradX may be
 * gradOut and gradA may be gradH (the partial sums that read them are queued first, and the row kernels read each
 * element before writing it); no other gradient output may share storage with an argument. eps is not used (ρ comes
 * from rstd), so it is not checked either.
 */
final class CudaNormBackward implements AutoCloseable {
    private static final int NORM_BLOCK = 256;

    private final CudaNetworkChecks check;
    private final CudaStream stream;
    private final PartialSums sums;
    private final ScratchBuffer scratch;
    private final Kernel rmsNormX;
    private final Kernel rmsNormXVec4;
    private final Kernel rmsNormPartials;
    private final Kernel gated;
    private final Kernel gatedVec4;
    private final Kernel gatedPartials;

    CudaNormBackward(CudaNetworkChecks check, KernelLibrary lib, CudaStream stream, PartialSums sums,
                     ScratchBuffer scratch) {
        this.check = check;
        this.stream = stream;
        this.sums = sums;
        this.scratch = scratch;
        KernelArg[] normX = {PTR, PTR, PTR, PTR, PTR, PTR, I64, I32, I32, I64, I32};
        rmsNormX = lib.kernel("rmsnorm_bwd_x", normX);
        rmsNormXVec4 = lib.kernel("rmsnorm_bwd_x_vec4", normX);
        rmsNormPartials = lib.kernel("rmsnorm_bwd_partials", PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I64, I32, I32,
                I64, I32, I32, I32, I32);
        KernelArg[] gate = {PTR, PTR, PTR, I64, I32, I32, I64, I32};
        gated = lib.kernel("gated_residual_bwd", gate);
        gatedVec4 = lib.kernel("gated_residual_bwd_vec4", gate);
        gatedPartials = lib.kernel("gated_residual_bwd_partials", PTR, PTR, PTR, I64, I32, I32, I32, I32, I32);
    }

    void rmsNormModulateBackward(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk, int scaleChunk,
                                 Tensor rstd, Tensor gradOut, Tensor gradX, Tensor gradWeight, Tensor gradMod) {
        String op = "rmsNormModulateBackward";
        CudaTensor in = check.f32(op, "x", x);
        CudaTensor w = check.f32(op, "weight", weight);
        CudaTensor go = check.f32(op, "gradOut", gradOut);
        if (in.rank() < 1 || in.dim(-1) == 0) {
            throw new ShapeException(op + ": x " + in.describe() + " needs a non-empty last dimension to normalize");
        }
        int d = in.dim(-1);
        long rows = in.numel() / d;
        Shapes.requireShape(op + ": weight [D] for x " + in.describe(), w, d);
        Shapes.requireSame(op + " (gradOut vs x)", go, in);
        CudaTensor m = null;
        int batches = 1;
        int tokens = (int) Math.min(rows, Integer.MAX_VALUE);
        if (mod != null) {
            m = check.f32(op, "mod", mod);
            requireRank(op, "x [B,T,D] (with mod)", in, 3);
            batches = in.dim(0);
            tokens = in.dim(1);
            requireChunks(op, m, in.dim(0), d, new String[] {"shiftChunk", "scaleChunk"}, shiftChunk, scaleChunk);
        } else if (rows > Integer.MAX_VALUE) {
            throw new ShapeException(op + ": x " + in.describe() + " has more than 2^31 rows");
        }
        Objects.requireNonNull(rstd, () -> op + ": rstd is null; the backward needs the ρ saved by the forward");
        CudaTensor r = check.f32(op, "rstd", rstd);
        if (r.numel() != rows) {
            throw new ShapeException(op + ": rstd " + r.describe() + " should hold one value per row of x "
                    + in.describe() + " (" + rows + ")");
        }
        CudaTensor gx = null;
        if (gradX != null) {
            gx = check.f32(op, "gradX", gradX);
            Shapes.requireSame(op + " (gradX vs x)", gx, in);
            requireNoSharing(op, gx, in, w, m, r);
        }
        CudaTensor gw = null;
        if (gradWeight != null) {
            gw = check.f32(op, "gradWeight", gradWeight);
            Shapes.requireShape(op + ": gradWeight [D] for x " + in.describe(), gw, d);
            requireNoSharing(op, gw, in, w, m, r, go, gx);
        }
        CudaTensor gm = null;
        if (gradMod != null) {
            if (m == null) {
                throw new IllegalArgumentException(op + ": gradMod " + gradMod.describe() + " was given but mod is "
                        + "null (plain RMSNorm has no modulation to differentiate)");
            }
            gm = check.f32(op, "gradMod", gradMod);
            Shapes.requireSame(op + " (gradMod vs mod)", gm, m);
            requireNoSharing(op, gm, in, w, m, r, go, gx, gw);
        }
        if (rows == 0 || (gx == null && gw == null && gm == null)) {
            return;
        }
        long modStride = m == null ? 0 : m.dim(1);
        int scaleOff = m == null ? 0 : scaleChunk * d;
        int rowGrid = (int) Math.min((rows + NORM_BLOCK / 32 - 1) / (NORM_BLOCK / 32), CudaNetworkOps.MAX_GRID);
        boolean params = gw != null || gm != null;

        if (params) {
            // Partial sums first: they read gradOut, which gradX may overwrite.
            PartialSums.Segments seg = PartialSums.segments(batches, tokens);
            long plane = (long) seg.count() * d * Float.BYTES;
            long[] at = scratch.regions(op, gw != null ? plane : 0, gm != null ? plane : 0, gm != null ? plane : 0);
            rmsNormPartials.launch(stream, PartialSums.gridX(d), seg.gridY(), 1, PartialSums.COLUMNS_PER_BLOCK,
                    PartialSums.THREAD_ROWS, 1, 0, in.address(), w.address(), addressOrNull(m), r.address(),
                    go.address(), at[0], at[1], at[2], rows, d, tokens, modStride, scaleOff, seg.length(),
                    seg.perBatch(), seg.count());
            if (gw != null) {
                sums.accumulate(at[0], d, gw.address(), 0, 1, seg.count(), d);
            }
            if (gm != null) {
                long scaleOut = gm.address() + (long) scaleChunk * d * Float.BYTES;
                long shiftOut = gm.address() + (long) shiftChunk * d * Float.BYTES;
                sums.accumulate(at[1], d, scaleOut, modStride, batches, seg.perBatch(), d);
                sums.accumulate(at[2], d, shiftOut, modStride, batches, seg.perBatch(), d);
            }
        }
        if (gx != null) {
            boolean vec4 = d % 4 == 0 && aligned16(in, w, m, go, gx);
            (vec4 ? rmsNormXVec4 : rmsNormX).launch(stream, rowGrid, 1, 1, NORM_BLOCK, 1, 1, 0, in.address(),
                    w.address(), addressOrNull(m), r.address(), go.address(), gx.address(), rows, d, tokens,
                    modStride, scaleOff);
        }
    }

    void gatedResidualBackward(Tensor a, Tensor mod, int gateChunk, Tensor gradH, Tensor gradA, Tensor gradMod) {
        String op = "gatedResidualBackward";
        CudaTensor as = check.f32(op, "a", a);
        CudaTensor m = check.f32(op, "mod", mod);
        CudaTensor gh = check.f32(op, "gradH", gradH);
        requireRank(op, "a [B,T,D]", as, 3);
        Shapes.requireSame(op + " (gradH vs a)", gh, as);
        int b = as.dim(0), t = as.dim(1), d = as.dim(2);
        requireChunks(op, m, b, d, new String[] {"gateChunk"}, gateChunk);
        CudaTensor ga = null;
        if (gradA != null) {
            ga = check.f32(op, "gradA", gradA);
            Shapes.requireSame(op + " (gradA vs a)", ga, as);
            requireNoSharing(op, ga, as, m);
        }
        CudaTensor gm = null;
        if (gradMod != null) {
            gm = check.f32(op, "gradMod", gradMod);
            Shapes.requireSame(op + " (gradMod vs mod)", gm, m);
            requireNoSharing(op, gm, as, m, gh, ga);
        }
        long rows = (long) b * t;
        if (rows == 0 || d == 0) {
            return;
        }
        long modStride = m.dim(1);
        if (gm != null) {
            PartialSums.Segments seg = PartialSums.segments(b, t);
            long part = scratch.regions(op, (long) seg.count() * d * Float.BYTES)[0];
            gatedPartials.launch(stream, PartialSums.gridX(d), seg.gridY(), 1, PartialSums.COLUMNS_PER_BLOCK,
                    PartialSums.THREAD_ROWS, 1, 0, as.address(), gh.address(), part, rows, d, t, seg.length(),
                    seg.perBatch(), seg.count());
            sums.accumulate(part, d, gm.address() + (long) gateChunk * d * Float.BYTES, modStride, b, seg.perBatch(),
                    d);
        }
        if (ga != null) {
            boolean vec4 = d % 4 == 0 && aligned16(gh, m, ga);
            (vec4 ? gatedVec4 : gated).launch(stream, (int) Math.min(rows, CudaNetworkOps.MAX_GRID), 1, 1,
                    CudaNetworkOps.rowBlock(vec4 ? d / 4 : d), 1, 1, 0, gh.address(), m.address(), ga.address(), rows,
                    d, t, modStride, gateChunk * d);
        }
    }

    @Override
    public void close() {
        scratch.close();
    }
}
