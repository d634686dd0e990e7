package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import static facm.backend.cuda.CudaNetworkChecks.aligned16;
import static facm.tensor.Shapes.requireNoSharing;
import static facm.backend.cuda.CudaNetworkChecks.requirePatch;
import static facm.tensor.Shapes.requireRank;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * Launchers of the backward passes of the layout and elementwise layers (contract: facm.tensor.NetworkOps):
 * patchify/unpatchify (kernels/embed.cu, inverse permutations), the class-table lookup (embed.cu, deterministic: one
 * block per table row, no atomics), SwiGLU and SiLU (kernels/swiglu.cu). A null gradient output means "not wanted"
 * and the op returns without work. As in the forward ops, an id outside {@code [0, V)} cannot be reported without a
 * host round trip: its gradient row is dropped.
 */
final class CudaLayerBackward {
    private static final int ELEMENTWISE_BLOCK = 256;

    private final CudaNetworkChecks check;
    private final CudaStream stream;
    private final Kernel patchify;
    private final Kernel unpatchify;
    private final Kernel embedding;
    private final Kernel swiglu;
    private final Kernel swigluVec4;
    private final Kernel silu;

    CudaLayerBackward(CudaNetworkChecks check, KernelLibrary lib, CudaStream stream) {
        this.check = check;
        this.stream = stream;
        patchify = lib.kernel("patchify_bwd", PTR, PTR, I32, I32, I32, I32, I32);
        unpatchify = lib.kernel("unpatchify_bwd", PTR, PTR, I32, I32, I32, I32, I32);
        embedding = lib.kernel("embedding_bwd", PTR, PTR, PTR, I32, I32, I32);
        swiglu = lib.kernel("swiglu_bwd", PTR, PTR, PTR, I64, I32);
        swigluVec4 = lib.kernel("swiglu_bwd_vec4", PTR, PTR, PTR, I64, I32);
        silu = lib.kernel("silu_bwd", PTR, PTR, PTR, I64);
    }

    void patchifyBackward(Tensor gradTokens, int patch, Tensor gradX) {
        String op = "patchifyBackward";
        CudaTensor gt = check.f32(op, "gradTokens", gradTokens);
        if (gradX == null) {
            return;
        }
        CudaTensor gx = check.f32(op, "gradX", gradX);
        requireRank(op, "gradX [B,C,H,W]", gx, 4);
        int b = gx.dim(0), c = gx.dim(1), h = gx.dim(2), w = gx.dim(3);
        requirePatch(op, gx, patch, h, w);
        Shapes.requireShape(op + ": gradTokens [B, (H/p)(W/p), C·p·p] for gradX " + gx.describe() + ", patch "
                + patch, gt, b, (h / patch) * (w / patch), c * patch * patch);
        requireNoSharing(op, gx, gt);
        if (gx.numel() > 0) {
            patchify.launch1d(stream, gx.numel(), ELEMENTWISE_BLOCK, gt.address(), gx.address(), b, c, h, w, patch);
        }
    }

    void unpatchifyBackward(Tensor gradOut, int patch, Tensor gradTokens) {
        String op = "unpatchifyBackward";
        CudaTensor go = check.f32(op, "gradOut", gradOut);
        requireRank(op, "gradOut [B,C,H,W]", go, 4);
        int b = go.dim(0), c = go.dim(1), h = go.dim(2), w = go.dim(3);
        requirePatch(op, go, patch, h, w);
        if (gradTokens == null) {
            return;
        }
        CudaTensor gt = check.f32(op, "gradTokens", gradTokens);
        Shapes.requireShape(op + ": gradTokens [B, (H/p)(W/p), p·p·C] for gradOut " + go.describe() + ", patch "
                + patch, gt, b, (h / patch) * (w / patch), patch * patch * c);
        requireNoSharing(op, gt, go);
        if (gt.numel() > 0) {
            unpatchify.launch1d(stream, gt.numel(), ELEMENTWISE_BLOCK, go.address(), gt.address(), b, c, h, w, patch);
        }
    }

    void embeddingBackward(Tensor gradOut, Tensor ids, Tensor gradTable) {
        String op = "embeddingBackward";
        CudaTensor go = check.f32(op, "gradOut", gradOut);
        CudaTensor idt = check.i32(op, "ids", ids);
        requireRank(op, "ids [B]", idt, 1);
        requireRank(op, "gradOut [B, D]", go, 2);
        if (gradTable == null) {
            return;
        }
        CudaTensor gt = check.f32(op, "gradTable", gradTable);
        requireRank(op, "gradTable [V, D]", gt, 2);
        int rows = gt.dim(0), d = gt.dim(1), b = idt.dim(0);
        Shapes.requireShape(op + ": gradOut [B, D] for gradTable " + gt.describe() + ", ids " + idt.describe(), go,
                b, d);
        requireNoSharing(op, gt, go, idt);
        if (rows == 0 || d == 0 || b == 0) {
            return;
        }
        embedding.launch(stream, Math.min(rows, CudaNetworkOps.MAX_GRID), 1, 1, CudaNetworkOps.rowBlock(d), 1, 1, 0,
                go.address(), idt.address(), gt.address(), b, d, rows);
    }

    void swigluBackward(Tensor gu, Tensor gradOut, Tensor gradGu) {
        String op = "swigluBackward";
        CudaTensor in = check.f32(op, "gu", gu);
        CudaTensor go = check.f32(op, "gradOut", gradOut);
        if (in.rank() < 1 || in.dim(-1) == 0 || in.dim(-1) % 2 != 0) {
            throw new ShapeException(op + ": gu " + in.describe() + " needs an even, non-zero last dimension 2F");
        }
        int f = in.dim(-1) / 2;
        int[] outShape = in.shape();
        outShape[outShape.length - 1] = f;
        Shapes.requireShape(op + ": gradOut [rows, F] for gu " + in.describe(), go, outShape);
        if (gradGu == null) {
            return;
        }
        CudaTensor gg = check.f32(op, "gradGu", gradGu);
        Shapes.requireSame(op + " (gradGu vs gu)", gg, in);
        requireNoSharing(op, gg, in, go);
        long rows = go.numel() / f;
        if (rows == 0) {
            return;
        }
        boolean vec4 = f % 4 == 0 && aligned16(in, go, gg);
        (vec4 ? swigluVec4 : swiglu).launch(stream, (int) Math.min(rows, CudaNetworkOps.MAX_GRID), 1, 1,
                CudaNetworkOps.rowBlock(vec4 ? f / 4 : f), 1, 1, 0, in.address(), go.address(), gg.address(), rows, f);
    }

    void siluBackward(Tensor x, Tensor gradOut, Tensor gradIn) {
        String op = "siluBackward";
        CudaTensor in = check.f32(op, "x", x);
        CudaTensor go = check.f32(op, "gradOut", gradOut);
        Shapes.requireSame(op + " (gradOut vs x)", go, in);
        if (gradIn == null) {
            return;
        }
        CudaTensor gi = check.f32(op, "gradIn", gradIn);
        Shapes.requireSame(op + " (gradIn vs x)", gi, in);
        // gradIn may be gradOut or x (as on the CPU): each element is read before the same thread writes it.
        if (in.numel() > 0) {
            silu.launch1d(stream, in.numel(), ELEMENTWISE_BLOCK, in.address(), go.address(), gi.address(), in.numel());
        }
    }
}
