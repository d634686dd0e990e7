package facm.backend.cpu;

import facm.tensor.Backend;
import facm.tensor.Bf16;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.Device;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.ReduceOp;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;

import java.util.Arrays;
import java.util.Objects;

/**
 * The pure-Java backend: the reference every CUDA op is checked against, and the engine on machines without a GPU.
 * Tensors are {@link CpuTensor}s (one Java array each); work is split over a fixed pool of threads
 * ({@link ParallelRanges}), tiny tensors run on the calling thread. Ops run synchronously: when a method returns,
 * its output is written.
 *
 * <p>Numerics (details in {@link ElementwiseOps}, {@link ReductionOps}, {@link CpuGemm}): storage is fp32, bf16 or
 * int32; transcendental functions, sums, means and the softmax normalizer are computed in float64 and rounded once;
 * GEMM accumulates in fp32 with one rounding per multiply-add. Aliasing: elementwise ops and softmax allow
 * {@code out} to be an input; reduce and gemm reject an {@code out} that shares storage with an input.
 */
public final class CpuBackend implements Backend {
    private final CpuNetworkOps network = new CpuNetworkOps(this);

    @Override
    public facm.tensor.NetworkOps network() {
        return network;
    }

    private final CpuTrainingOps training = new CpuTrainingOps(this);

    @Override
    public facm.tensor.TrainingOps training() {
        return training;
    }

    private final ParallelRanges parallel;
    private volatile boolean closed;

    /** A backend using every core the JVM sees. */
    public CpuBackend() {
        this(Runtime.getRuntime().availableProcessors());
    }

    /** A backend with a fixed number of worker threads (1 = everything on the calling thread). */
    public CpuBackend(int threads) {
        this.parallel = new ParallelRanges(threads);
    }

    @Override
    public Device device() {
        return Device.CPU;
    }

    @Override
    public String describe() {
        return "cpu (" + parallel.threads() + " threads, Java " + Runtime.version() + ")";
    }

    public int threads() {
        return parallel.threads();
    }

    /** The thread pool, for CPU implementations of ops outside this package. */
    public ParallelRanges parallel() {
        requireOpenBackend("parallel");
        return parallel;
    }

    /**
     * {@code t} as a CpuTensor of this backend, for CPU op implementations. Throws if it belongs to another backend
     * or has been closed; {@code op} names the caller in the message.
     */
    public CpuTensor require(String op, Tensor t) {
        requireOpenBackend(op);
        return Shapes.owned(op, t, this, CpuTensor.class);
    }

    // ---------------------------------------------------------------- memory and transfer

    @Override
    public CpuTensor empty(String name, DType dtype, int... shape) {
        requireOpenBackend("empty");
        return CpuTensor.allocate(this, name, Objects.requireNonNull(dtype, "empty: dtype is null"), shape);
    }

    @Override
    public CpuTensor upload(String name, float[] data, int... shape) {
        checkUploadLength("upload", name, data.length, shape);
        return CpuTensor.wrap(this, name, DType.F32, shape, data.clone());
    }

    @Override
    public CpuTensor upload(String name, int[] data, int... shape) {
        checkUploadLength("upload", name, data.length, shape);
        return CpuTensor.wrap(this, name, DType.I32, shape, data.clone());
    }

    @Override
    public CpuTensor uploadBf16(String name, short[] bits, int... shape) {
        checkUploadLength("uploadBf16", name, bits.length, shape);
        return CpuTensor.wrap(this, name, DType.BF16, shape, bits.clone());
    }

    private void checkUploadLength(String op, String name, int length, int[] shape) {
        requireOpenBackend(op);
        Shapes.requireHostLength(op, name, length, shape);
    }

    @Override
    public float[] download(Tensor t) {
        CpuTensor x = require("download", t);
        Shapes.requireDType("download", x, DType.F32, DType.BF16);
        if (x.dtype() == DType.F32) {
            return x.f32().clone();
        }
        return Bf16.toFloats(x.bf16());
    }

    @Override
    public int[] downloadInts(Tensor t) {
        CpuTensor x = require("downloadInts", t);
        Shapes.requireDType("downloadInts", x, DType.I32);
        return x.i32().clone();
    }

    @Override
    public short[] downloadBf16(Tensor t) {
        CpuTensor x = require("downloadBf16", t);
        Shapes.requireDType("downloadBf16", x, DType.BF16);
        return x.bf16().clone();
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        CpuTensor s = require("copy", src);
        CpuTensor d = require("copy", dst);
        if (s.dtype() != d.dtype() || s.numel() != d.numel()) {
            throw new ShapeException("copy: " + s.describe() + " -> " + d.describe()
                    + ": dtype and element count must match");
        }
        Object from = switch (s.dtype()) {
            case F32 -> s.f32();
            case BF16 -> s.bf16();
            case I32 -> s.i32();
        };
        Object to = switch (d.dtype()) {
            case F32 -> d.f32();
            case BF16 -> d.bf16();
            case I32 -> d.i32();
        };
        System.arraycopy(from, 0, to, 0, s.size());
    }

    @Override
    public void fill(Tensor out, float value) {
        CpuTensor o = require("fill", out);
        Shapes.requireDType("fill", o, DType.F32, DType.BF16);
        if (o.dtype() == DType.F32) {
            Arrays.fill(o.f32(), value);
        } else {
            Arrays.fill(o.bf16(), Bf16.fromFloat(value));
        }
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void unary(UnaryOp op, Tensor x, Tensor out) {
        String what = "unary " + Objects.requireNonNull(op, "unary: op is null");
        CpuTensor in = requireF32(what, x);
        CpuTensor o = requireF32(what, out);
        Shapes.requireSame(what, in, o);
        ElementwiseOps.unary(parallel, op, in.f32(), o.f32());
    }

    @Override
    public void binary(BinaryOp op, Tensor a, Tensor b, Tensor out) {
        String what = "binary " + Objects.requireNonNull(op, "binary: op is null");
        CpuTensor x = requireF32(what, a);
        CpuTensor y = requireF32(what, b);
        CpuTensor o = requireF32(what, out);
        if (!(x.sameShape(y) || y.numel() == 1 || Shapes.isSuffix(x.shape(), y.shape()))) {
            throw new ShapeException(what + ": b " + y.describe() + " must have a's shape, equal a's trailing "
                    + "dimensions, or hold one element; a is " + x.describe());
        }
        Shapes.requireSame(what + " (out vs a)", o, x);
        if (x.numel() == 0) {
            return;
        }
        ElementwiseOps.binary(parallel, op, x.f32(), y.f32(), o.f32());
    }

    @Override
    public void affine(Tensor x, float alpha, float beta, Tensor out) {
        CpuTensor in = requireF32("affine", x);
        CpuTensor o = requireF32("affine", out);
        Shapes.requireSame("affine", in, o);
        ElementwiseOps.affine(parallel, in.f32(), alpha, beta, o.f32());
    }

    @Override
    public void axpby(float alpha, Tensor a, float beta, Tensor b, Tensor out) {
        CpuTensor x = requireF32("axpby", a);
        CpuTensor y = requireF32("axpby", b);
        CpuTensor o = requireF32("axpby", out);
        Shapes.requireSame("axpby (a vs b)", x, y);
        Shapes.requireSame("axpby (a vs out)", x, o);
        ElementwiseOps.axpby(parallel, alpha, x.f32(), beta, y.f32(), o.f32());
    }

    // ---------------------------------------------------------------- reductions and softmax

    @Override
    public void reduce(ReduceOp op, Tensor x, int axis, Tensor out) {
        String what = "reduce " + Objects.requireNonNull(op, "reduce: op is null") + " axis " + axis;
        CpuTensor in = requireF32(what, x);
        CpuTensor o = requireF32(what, out);
        if (axis < -in.rank() || axis >= in.rank()) {
            throw new ShapeException(what + ": axis out of range for " + in.describe());
        }
        int ax = Shapes.axis(axis, in.rank());
        int[] shape = in.shape();
        Shapes.requireShape(what + ": out", o, Shapes.without(shape, ax));
        if (o.sharesStorageWith(in)) {
            throw new ShapeException(what + ": out " + o.describe() + " must not share storage with x");
        }
        ReductionOps.reduce(parallel, op, in.f32(), (int) Shapes.outer(shape, ax), shape[ax],
                (int) Shapes.inner(shape, ax), o.f32());
    }

    @Override
    public void softmax(Tensor x, Tensor out) {
        CpuTensor in = requireF32("softmax", x);
        CpuTensor o = requireF32("softmax", out);
        if (in.rank() == 0) {
            throw new ShapeException("softmax: " + in.describe() + " has no last axis");
        }
        Shapes.requireSame("softmax", in, o);
        int cols = in.dim(-1);
        if (cols == 0) {
            return;
        }
        ReductionOps.softmax(parallel, in.f32(), in.size() / cols, cols, o.f32());
    }

    // ---------------------------------------------------------------- matrix products

    @Override
    public void gemm(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, float alpha, float beta,
                     GemmPrecision precision) {
        CpuGemm.gemm(parallel, require("gemm", a), transA, require("gemm", b), transB, require("gemm", out),
                alpha, beta, precision);
    }

    /**
     * The reference of CUDA's fused bias epilogue for BF16 products with a bias: the f32 product plus the bias (f32,
     * or bf16 widened exactly) in f32, rounded to out's dtype once more when out is BF16. Everything else is the
     * interface's gemm + bias add.
     */
    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor out, GemmPrecision precision) {
        if (bias == null || precision != GemmPrecision.BF16 || (out.dtype() == DType.F32
                && bias.dtype() == DType.F32)) {
            Backend.super.linear(x, weight, bias, out, precision);
            return;
        }
        Shapes.requireShape("linear: bias [out features] for weight " + weight.describe(), bias, weight.dim(0));
        try (Tensor wideOut = empty(out.name() + " f32", DType.F32, out.shape());
             Tensor wideBias = bias.dtype() == DType.F32 ? null : empty(bias.name() + " f32", DType.F32,
                     bias.shape())) {
            if (wideBias != null) {
                convert(bias, wideBias);
            }
            Backend.super.linear(x, weight, wideBias != null ? wideBias : bias, wideOut, precision);
            convert(wideOut, out);
        }
    }

    // ---------------------------------------------------------------- random numbers

    @Override
    public void randomNormal(Tensor out, long seed, long offset) {
        float[] o = requireF32("randomNormal", out).f32();
        parallel.forRange(o.length, ElementwiseOps.COSTLY_GRAIN, (s, e) -> {
            int[] words = new int[4];
            for (int i = (int) s; i < (int) e; i++) {
                Philox.block(seed, offset + i, words);
                o[i] = Philox.normalOf(words);
            }
        });
    }

    @Override
    public void randomUniform(Tensor out, long seed, long offset) {
        float[] o = requireF32("randomUniform", out).f32();
        parallel.forRange(o.length, ElementwiseOps.COSTLY_GRAIN, (s, e) -> {
            int[] words = new int[4];
            for (int i = (int) s; i < (int) e; i++) {
                Philox.block(seed, offset + i, words);
                o[i] = Philox.uniformOf(words);
            }
        });
    }

    // ---------------------------------------------------------------- conversion and sync

    @Override
    public void convert(Tensor x, Tensor out) {
        CpuTensor in = require("convert", x);
        CpuTensor o = require("convert", out);
        Shapes.requireSame("convert", in, o);
        DType from = in.dtype();
        DType to = o.dtype();
        if (from == to) {
            copy(in, o);
            return;
        }
        switch (from) {
            case F32 -> {
                if (to == DType.BF16) {
                    ConversionOps.f32ToBf16(parallel, in.f32(), o.bf16());
                } else {
                    ConversionOps.f32ToI32(parallel, in.f32(), o.i32());
                }
            }
            case BF16 -> ConversionOps.bf16ToF32(parallel, in.bf16(), requireConversion(in, o, DType.F32).f32());
            case I32 -> ConversionOps.i32ToF32(parallel, in.i32(), requireConversion(in, o, DType.F32).f32());
        }
    }

    private static CpuTensor requireConversion(CpuTensor in, CpuTensor out, DType allowed) {
        if (out.dtype() != allowed) {
            throw new ShapeException("convert: " + in.describe() + " -> " + out.describe() + " is not supported "
                    + "(supported: f32<->bf16, f32<->i32)");
        }
        return out;
    }

    @Override
    public void synchronize() {
        // Every op has finished when it returns.
    }

    /** Stops the worker threads; later ops throw. Tensors already made stay readable through their accessors. */
    @Override
    public void close() {
        closed = true;
        parallel.close();
    }

    @Override
    public String toString() {
        return describe();
    }

    // ---------------------------------------------------------------- checks

    private CpuTensor requireF32(String op, Tensor t) {
        CpuTensor c = require(op, t);
        Shapes.requireDType(op, c, DType.F32);
        return c;
    }

    private void requireOpenBackend(String op) {
        if (closed) {
            throw new IllegalStateException(op + ": the cpu backend was closed");
        }
    }
}
