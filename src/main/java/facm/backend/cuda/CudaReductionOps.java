package facm.backend.cuda;

import facm.tensor.ReduceOp;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Objects;

/**
 * {@link CudaBackend}'s reductions and softmax: the CPU reference's axis, shape and aliasing checks, then one launch
 * of {@link ReductionKernels} on the backend's stream.
 */
final class CudaReductionOps {
    private final CudaBackend backend;
    private final ReductionKernels reductions;

    CudaReductionOps(CudaBackend backend, ReductionKernels reductions) {
        this.backend = backend;
        this.reductions = reductions;
    }

    void reduce(ReduceOp op, Tensor x, int axis, Tensor out) {
        String what = "reduce " + Objects.requireNonNull(op, "reduce: op is null") + " axis " + axis;
        CudaTensor in = backend.requireF32(what, x);
        CudaTensor o = backend.requireF32(what, out);
        if (axis < -in.rank() || axis >= in.rank()) {
            throw new ShapeException(what + ": axis out of range for " + in.describe());
        }
        int ax = Shapes.axis(axis, in.rank());
        int[] shape = in.shape();
        Shapes.requireShape(what + ": out", o, Shapes.without(shape, ax));
        if (o.sharesStorageWith(in)) {
            throw new ShapeException(what + ": out " + o.describe() + " must not share storage with x");
        }
        reductions.reduce(op, in.address(), o.address(), Shapes.outer(shape, ax), shape[ax], Shapes.inner(shape, ax));
    }

    /**
     * Backend.linearBiasGradient in one pass: gOut [rows, cols] F32, gOutBf16 null or BF16 of its shape, gBias F32
     * [cols], none sharing storage; returns false (nothing done) where the sliced kernel has no launch for the shape.
     */
    boolean linearBiasGradient(Tensor gOut, Tensor gOutBf16, Tensor gBias) {
        String what = "linearBiasGradient";
        CudaTensor g = backend.requireF32(what, gOut);
        CudaTensor b = backend.requireF32(what, gBias);
        if (g.rank() != 2) {
            throw new ShapeException(what + ": gOut " + g.describe() + " should be [rows, cols]");
        }
        long rows = g.dim(0), cols = g.dim(1);
        Shapes.requireShape(what + ": gBias", b, (int) cols);
        CudaTensor copy = null;
        if (gOutBf16 != null) {
            copy = backend.require(what, gOutBf16);
            Shapes.requireDType(what, copy, facm.tensor.DType.BF16);
            Shapes.requireSame(what + " (gOutBf16 vs gOut)", copy, g);
            if (copy.sharesStorageWith(g) || copy.sharesStorageWith(b)) {
                throw new ShapeException(what + ": gOutBf16 " + copy.describe() + " must not share storage");
            }
        }
        if (b.sharesStorageWith(g)) {
            throw new ShapeException(what + ": gBias " + b.describe() + " must not share storage with gOut");
        }
        if (rows == 0 || cols == 0 || ReductionKernels.sliceRows(1, rows, cols) == 0) {
            return false;
        }
        reductions.sumRows(g.address(), copy == null ? 0L : copy.address(), b.address(), rows, cols, true);
        return true;
    }

    void softmax(Tensor x, Tensor out) {
        CudaTensor in = backend.requireF32("softmax", x);
        CudaTensor o = backend.requireF32("softmax", out);
        if (in.rank() == 0) {
            throw new ShapeException("softmax: " + in.describe() + " has no last axis");
        }
        Shapes.requireSame("softmax", in, o);
        int cols = in.dim(-1);
        if (cols == 0) {
            return;
        }
        reductions.softmax(in.address(), o.address(), in.numel() / cols, cols);
    }
}
