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
