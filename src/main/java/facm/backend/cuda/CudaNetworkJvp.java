package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelArg;
import facm.cuda.KernelLibrary;
import facm.tensor.DType;
import facm.tensor.NetworkChecks;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import static facm.backend.cuda.CudaNetworkChecks.addressOrNull;
import static facm.tensor.NetworkChecks.requireChunks;
import static facm.tensor.Shapes.requireNoSharing;
import static facm.tensor.Shapes.requireRank;
import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.F64;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * Forward-mode (JVP) launchers of the layer ops of {@link CudaNetworkOps} (facm-spec.md §6.2, contract
 * {@link NetworkOps}): one kernel per op computes the primal exactly as the forward kernel does and the tangent in the
 * same pass (kernels/embed.cu, elementwise.cu, rmsnorm.cu, adaln.cu, swiglu.cu, "forward mode" sections). The primal
 * arguments get the forward op's rules and messages (restated here: the forward launchers check inline), each tangent
 * must have its primal's shape, and a null tangent input is passed as a null pointer, which the kernels read as zero.
 * rmsNormModulateJvp takes register-cached float4 kernels under the vec4 forward's conditions (its primal then has
 * that forward's bits), else the scalar form (any D, any alignment); swigluJvp takes float4 kernels when F % 4 == 0 and the operands are
 * aligned; gatedResidualJvp is scalar.
 * rmsNormModulateJvp and swigluJvp may write bf16 out and outDot (both), the operands of the next bf16 linear and its tangent.
 */
final class CudaNetworkJvp {
    private static final int ELEMENTWISE_BLOCK = 256;
    private static final int NORM_BLOCK = 256;
    /** Largest D of the float4 JVP's _c9 kernels (9 float4 per lane); _c16 take the vec4 forward's limit. */
    private static final int NORM_VEC4_SMALL_D = 32 * 9 * 4;

    private final CudaNetworkChecks check;
    private final CudaStream stream;
    private final Kernel timestep;
    private final Kernel silu;
    private final Kernel rmsNorm;
    private final Kernel gated;
    private final Kernel swiglu;
    private final Kernel rmsNormBf16Out;
    /** rmsnorm_jvp_vec4_c9 (D <= NORM_VEC4_SMALL_D) and _c16 (D <= NORM_VEC4_MAX_D), fp32 and bf16 out. */
    private final Kernel rmsNormVec4Small;
    private final Kernel rmsNormVec4SmallBf16Out;
    private final Kernel rmsNormVec4;
    private final Kernel rmsNormVec4Bf16Out;
    private final Kernel swigluBf16Out;
    /** swiglu_jvp_vec4*: F % 4 == 0 and aligned operands; the same bits as the scalar kernels. */
    private final Kernel swigluVec4;
    private final Kernel swigluVec4Bf16Out;

    CudaNetworkJvp(CudaNetworkChecks check, KernelLibrary lib, CudaStream stream) {
        this.check = check;
        this.stream = stream;
        timestep = lib.kernel("timestep_embedding_jvp", PTR, PTR, PTR, PTR, I32, I32, F64);
        silu = lib.kernel("silu_jvp_f32", PTR, PTR, PTR, PTR, I64);
        rmsNorm = lib.kernel("rmsnorm_jvp", PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I64, I32, I32, I64, I32, I32,
                F32);
        gated = lib.kernel("gated_residual_jvp", PTR, PTR, PTR, PTR, PTR, PTR, I64, I32, I32, I64, I32);
        swiglu = lib.kernel("swiglu_jvp", PTR, PTR, PTR, PTR, I64, I32);
        rmsNormBf16Out = lib.kernel("rmsnorm_jvp_bf16out", PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I64, I32, I32,
                I64, I32, I32, F32);
        KernelArg[] norm = {PTR, PTR, PTR, PTR, PTR, PTR, PTR, PTR, I64, I32, I32, I64, I32, I32, F32};
        rmsNormVec4Small = lib.kernel("rmsnorm_jvp_vec4_c9", norm);
        rmsNormVec4SmallBf16Out = lib.kernel("rmsnorm_jvp_vec4_c9_bf16out", norm);
        rmsNormVec4 = lib.kernel("rmsnorm_jvp_vec4_c16", norm);
        rmsNormVec4Bf16Out = lib.kernel("rmsnorm_jvp_vec4_c16_bf16out", norm);
        swigluBf16Out = lib.kernel("swiglu_jvp_bf16out", PTR, PTR, PTR, PTR, I64, I32);
        swigluVec4 = lib.kernel("swiglu_jvp_vec4", PTR, PTR, PTR, PTR, I64, I32);
        swigluVec4Bf16Out = lib.kernel("swiglu_jvp_vec4_bf16out", PTR, PTR, PTR, PTR, I64, I32);
    }

    /** The tangent (may be null) as a tensor of the primal's shape; {@code role} names it in errors. */
    private CudaTensor tangentLike(String op, String role, Tensor tangent, CudaTensor primal) {
        if (tangent == null) {
            return null;
        }
        CudaTensor t = check.f32(op, role, tangent);
        Shapes.requireSame(op + " (" + role + " vs " + primal.name() + ")", t, primal);
        return t;
    }

    void timestepEmbeddingJvp(Tensor t, Tensor tDot, float maxPeriod, Tensor out, Tensor outDot) {
        String op = "timestepEmbeddingJvp";
        CudaTensor times = check.f32(op, "t", t);
        CudaTensor o = check.f32(op, "out", out);
        CudaTensor od = check.f32(op, "outDot", outDot);
        requireRank(op, "t [B]", times, 1);
        requireRank(op, "out [B, dim]", o, 2);
        int b = times.dim(0), dim = o.dim(1);
        if (o.dim(0) != b || dim < 2 || dim % 2 != 0) {
            throw new ShapeException(op + ": out " + o.describe() + " should be [B, dim] with B = " + b
                    + " (from t " + times.describe() + ") and dim even and >= 2");
        }
        Shapes.requireSame(op + " (outDot vs out)", od, o);
        CudaTensor td = tangentLike(op, "tDot", tDot, times);
        if (!(maxPeriod > 0) || Float.isInfinite(maxPeriod)) {
            throw new IllegalArgumentException(op + ": maxPeriod must be finite and positive, got " + maxPeriod);
        }
        requireNoSharing(op, o, times, td, od);
        requireNoSharing(op, od, times, td);
        if (o.numel() > 0) {
            timestep.launch1d(stream, o.numel(), ELEMENTWISE_BLOCK, times.address(), addressOrNull(td), o.address(),
                    od.address(), b, dim, Math.log(maxPeriod));
        }
    }

    void siluJvp(Tensor x, Tensor xDot, Tensor out, Tensor outDot) {
        String op = "siluJvp";
        CudaTensor in = check.f32(op, "x", x);
        CudaTensor o = check.f32(op, "out", out);
        CudaTensor od = check.f32(op, "outDot", outDot);
        CudaTensor xd = tangentLike(op, "xDot", xDot, in);
        Shapes.requireSame(op + " (out vs x)", o, in);
        Shapes.requireSame(op + " (outDot vs x)", od, in);
        // Element-wise: out may be x and outDot may be xDot; anything else shared would be read after a write.
        if (!o.sharesStorageWith(in)) {
            requireNoSharing(op, o, xd);
        }
        if (xd == null || !od.sharesStorageWith(xd)) {
            requireNoSharing(op, od, in, o);
        }
        if (in.numel() > 0) {
            silu.launch1d(stream, in.numel(), ELEMENTWISE_BLOCK, in.address(), addressOrNull(xd), o.address(),
                    od.address(), in.numel());
        }
    }

    void rmsNormModulateJvp(Tensor x, Tensor xDot, Tensor weight, float eps, Tensor mod, Tensor modDot,
                            int shiftChunk, int scaleChunk, Tensor out, Tensor outDot, Tensor rstd) {
        String op = "rmsNormModulateJvp";
        CudaTensor in = check.f32(op, "x", x);
        CudaTensor w = check.f32(op, "weight", weight);
        CudaTensor o = check.floating(op, "out", out);
        CudaTensor od = check.floating(op, "outDot", outDot);
        NetworkChecks.jvpOutDTypes(op, o, od);
        if (in.rank() < 1 || in.dim(-1) == 0) {
            throw new ShapeException(op + ": x " + in.describe() + " needs a non-empty last dimension to normalize");
        }
        int d = in.dim(-1);
        long rows = in.numel() / d;
        Shapes.requireShape(op + ": weight [D] for x " + in.describe(), w, d);
        Shapes.requireSame(op + " (out vs x)", o, in);
        Shapes.requireSame(op + " (outDot vs x)", od, in);
        CudaTensor xd = tangentLike(op, "xDot", xDot, in);
        NetworkChecks.requireEps(op, eps);
        CudaTensor m = null, md = null;
        int tokens = 1;
        if (mod != null) {
            m = check.f32(op, "mod", mod);
            requireRank(op, "x [B,T,D] (with mod)", in, 3);
            tokens = in.dim(1);
            requireChunks(op, m, in.dim(0), d, new String[] {"shiftChunk", "scaleChunk"}, shiftChunk, scaleChunk);
            md = tangentLike(op, "modDot", modDot, m);
        } else if (modDot != null) {
            throw new IllegalArgumentException(op + ": modDot " + modDot.describe() + " given without mod");
        }
        CudaTensor r = null;
        if (rstd != null) {
            r = check.f32(op, "rstd", rstd);
            if (r.numel() != rows) {
                throw new ShapeException(op + ": rstd " + r.describe() + " should hold one value per row of x "
                        + in.describe() + " (" + rows + ")");
            }
            requireNoSharing(op, r, in, xd, w, m, md, o, od);
        }
        requireNoSharing(op, o, w, m, md, xd, od);
        requireNoSharing(op, od, w, m, md, in);
        if (rows == 0 || tokens == 0) {
            return;
        }
        long modStride = m == null ? 0 : m.dim(1);
        int grid = (int) Math.min((rows + NORM_BLOCK / 32 - 1) / (NORM_BLOCK / 32), CudaNetworkOps.MAX_GRID);
        boolean bf16 = o.dtype() == DType.BF16;
        // The register-cached kernels under the vec4 forward's conditions, so the primal keeps that forward's bits.
        boolean vec4 = d % 4 == 0 && d <= CudaResidualNorm.NORM_VEC4_MAX_D && CudaNetworkChecks.aligned16(in, xd, w, m, md)
                && CudaNetworkChecks.aligned(bf16 ? 8 : 16, o, od);
        Kernel kernel = !vec4 ? (bf16 ? rmsNormBf16Out : rmsNorm)
                : d <= NORM_VEC4_SMALL_D ? (bf16 ? rmsNormVec4SmallBf16Out : rmsNormVec4Small)
                : (bf16 ? rmsNormVec4Bf16Out : rmsNormVec4);
        kernel.launch(stream, grid, 1, 1, NORM_BLOCK, 1, 1, 0, in.address(), addressOrNull(xd), w.address(),
                addressOrNull(m), addressOrNull(md), o.address(), od.address(), addressOrNull(r), rows, d, tokens,
                modStride, shiftChunk * d, scaleChunk * d, eps);
    }

    void gatedResidualJvp(Tensor h, Tensor hDot, Tensor a, Tensor aDot, Tensor mod, Tensor modDot, int gateChunk) {
        String op = "gatedResidualJvp";
        CudaTensor hs = check.f32(op, "h", h);
        CudaTensor hd = check.f32(op, "hDot", hDot);
        CudaTensor as = check.f32(op, "a", a);
        CudaTensor m = check.f32(op, "mod", mod);
        requireRank(op, "h [B,T,D]", hs, 3);
        Shapes.requireSame(op + " (a vs h)", as, hs);
        Shapes.requireSame(op + " (hDot vs h)", hd, hs);
        CudaTensor ad = tangentLike(op, "aDot", aDot, hs);
        int d = hs.dim(2);
        requireChunks(op, m, hs.dim(0), d, new String[] {"gateChunk"}, gateChunk);
        CudaTensor md = tangentLike(op, "modDot", modDot, m);
        requireNoSharing(op, hs, m, md, hd, ad);
        requireNoSharing(op, hd, m, md, as);
        long rows = (long) hs.dim(0) * hs.dim(1);
        if (rows == 0) {
            return;
        }
        gated.launch(stream, (int) Math.min(rows, CudaNetworkOps.MAX_GRID), 1, 1, CudaNetworkOps.rowBlock(d), 1, 1,
                0, hs.address(), hd.address(), as.address(), addressOrNull(ad), m.address(), addressOrNull(md), rows,
                d, hs.dim(1), (long) m.dim(1), gateChunk * d);
    }

    void swigluJvp(Tensor gu, Tensor guDot, Tensor out, Tensor outDot) {
        String op = "swigluJvp";
        CudaTensor in = check.f32(op, "gu", gu);
        CudaTensor o = check.floating(op, "out", out);
        CudaTensor od = check.floating(op, "outDot", outDot);
        NetworkChecks.jvpOutDTypes(op, o, od);
        if (in.rank() < 1 || in.dim(-1) == 0 || in.dim(-1) % 2 != 0) {
            throw new ShapeException(op + ": gu " + in.describe() + " needs an even, non-zero last dimension 2F");
        }
        int f = in.dim(-1) / 2;
        int[] expected = in.shape();
        expected[expected.length - 1] = f;
        Shapes.requireShape(op + ": out [rows, F] for gu " + in.describe(), o, expected);
        Shapes.requireSame(op + " (outDot vs out)", od, o);
        CudaTensor gd = tangentLike(op, "guDot", guDot, in);
        requireNoSharing(op, o, in, gd, od);
        requireNoSharing(op, od, in, gd);
        long rows = o.numel() / f;
        if (rows == 0) {
            return;
        }
        boolean bf16 = o.dtype() == DType.BF16;
        boolean vec4 = f % 4 == 0 && CudaNetworkChecks.aligned16(in, gd)
                && CudaNetworkChecks.aligned(bf16 ? 8 : 16, o, od);
        Kernel kernel = vec4 ? (bf16 ? swigluVec4Bf16Out : swigluVec4) : (bf16 ? swigluBf16Out : swiglu);
        kernel.launch(stream, (int) Math.min(rows, CudaNetworkOps.MAX_GRID), 1, 1,
                CudaNetworkOps.rowBlock(vec4 ? f / 4 : f), 1, 1, 0, in.address(), addressOrNull(gd), o.address(),
                od.address(), rows, f);
    }
}
