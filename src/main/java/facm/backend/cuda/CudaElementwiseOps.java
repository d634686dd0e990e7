package facm.backend.cuda;

import facm.tensor.Bf16;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;

import java.util.Objects;

/**
 * {@link CudaBackend}'s elementwise ops (fill, unary, binary, affine, axpby, convert): the CPU reference's shape and
 * dtype checks, then one launch of {@link ElementwiseKernels} on the backend's stream.
 */
final class CudaElementwiseOps {
    private final CudaBackend backend;
    private final ElementwiseKernels elementwise;

    CudaElementwiseOps(CudaBackend backend, ElementwiseKernels elementwise) {
        this.backend = backend;
        this.elementwise = elementwise;
    }

    void fill(Tensor out, float value) {
        CudaTensor o = backend.require("fill", out);
        Shapes.requireDType("fill", o, DType.F32, DType.BF16);
        if (o.dtype() == DType.F32) {
            elementwise.fill32(o.address(), o.numel(), Float.floatToRawIntBits(value));
        } else {
            elementwise.fill16(o.address(), o.numel(), Bf16.fromFloat(value));
        }
    }

    void unary(UnaryOp op, Tensor x, Tensor out) {
        String what = "unary " + Objects.requireNonNull(op, "unary: op is null");
        CudaTensor in = backend.requireF32(what, x);
        CudaTensor o = backend.requireF32(what, out);
        Shapes.requireSame(what, in, o);
        elementwise.unary(op, in.address(), o.address(), in.numel());
    }

    void binary(BinaryOp op, Tensor a, Tensor b, Tensor out) {
        String what = "binary " + Objects.requireNonNull(op, "binary: op is null");
        CudaTensor x = backend.requireF32(what, a);
        CudaTensor y = backend.requireF32(what, b);
        CudaTensor o = backend.requireF32(what, out);
        if (!(x.sameShape(y) || y.numel() == 1 || Shapes.isSuffix(x.shape(), y.shape()))) {
            throw new ShapeException(what + ": b " + y.describe() + " must have a's shape, equal a's trailing "
                    + "dimensions, or hold one element; a is " + x.describe());
        }
        Shapes.requireSame(what + " (out vs a)", o, x);
        elementwise.binary(op, x.address(), y.address(), o.address(), x.numel(), y.numel());
    }

    void affine(Tensor x, float alpha, float beta, Tensor out) {
        CudaTensor in = backend.requireF32("affine", x);
        CudaTensor o = backend.requireF32("affine", out);
        Shapes.requireSame("affine", in, o);
        elementwise.affine(in.address(), o.address(), in.numel(), alpha, beta);
    }

    void axpby(float alpha, Tensor a, float beta, Tensor b, Tensor out) {
        CudaTensor x = backend.requireF32("axpby", a);
        CudaTensor y = backend.requireF32("axpby", b);
        CudaTensor o = backend.requireF32("axpby", out);
        Shapes.requireSame("axpby (a vs b)", x, y);
        Shapes.requireSame("axpby (a vs out)", x, o);
        elementwise.axpby(x.address(), y.address(), o.address(), x.numel(), alpha, beta);
    }

    void convert(Tensor x, Tensor out) {
        CudaTensor in = backend.require("convert", x);
        CudaTensor o = backend.require("convert", out);
        Shapes.requireSame("convert", in, o);
        DType from = in.dtype();
        DType to = o.dtype();
        if (from == to) {
            backend.copy(in, o);
            return;
        }
        if (!ElementwiseKernels.converts(from, to)) {
            throw new ShapeException("convert: " + in.describe() + " -> " + out.describe() + " is not supported "
                    + "(supported: f32<->bf16, f32<->i32)");
        }
        elementwise.convert(from, to, in.address(), o.address(), in.numel());
    }
}
