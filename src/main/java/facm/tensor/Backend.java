package facm.tensor;

/**
 * The ops every backend implements. One op, one contract: the CPU backend is the reference, the CUDA backend must
 * match it within the tolerances its tests state. Primitive ops write into a caller-allocated {@code out} (so hot
 * loops allocate nothing); the default methods allocate the output for convenience.
 *
 * <p>All tensors passed to a backend must belong to it. Shapes and dtypes are checked and a {@link ShapeException}
 * names the op and the offending tensors. Ops are asynchronous on CUDA: results are ordered on the backend's stream
 * and visible to the host after {@link #download} or {@link #synchronize()}.
 */
public interface Backend extends AutoCloseable {

    Device device();

    /** One line: backend kind, device name, threads or memory. */
    String describe();

    // ---------------------------------------------------------------- memory and transfer

    /** Uninitialized tensor (CUDA: contents undefined; CPU: zeros). */
    Tensor empty(String name, DType dtype, int... shape);

    default Tensor empty(DType dtype, int... shape) {
        return empty("", dtype, shape);
    }

    /** F32 tensor from host values (row-major). */
    Tensor upload(String name, float[] data, int... shape);

    /** I32 tensor from host values. */
    Tensor upload(String name, int[] data, int... shape);

    /** BF16 tensor from raw bf16 bit patterns. */
    Tensor uploadBf16(String name, short[] bits, int... shape);

    /** Values of an F32 or BF16 tensor as floats (waits for pending work). */
    float[] download(Tensor t);

    /** Values of an I32 tensor. */
    int[] downloadInts(Tensor t);

    /** Raw bit patterns of a BF16 tensor. */
    short[] downloadBf16(Tensor t);

    /** Copies {@code src} into {@code dst}: same dtype and element count. */
    void copy(Tensor src, Tensor dst);

    /** Sets every element of a floating tensor to {@code value}. */
    void fill(Tensor out, float value);

    // ---------------------------------------------------------------- elementwise (F32)

    void unary(UnaryOp op, Tensor x, Tensor out);

    /**
     * out = op(a, b). {@code b} has a's shape, or equals a's trailing dimensions (broadcast over the leading ones,
     * e.g. a bias row), or has one element (a scalar). {@code out} has a's shape and may alias {@code a}.
     */
    void binary(BinaryOp op, Tensor a, Tensor b, Tensor out);

    /** out = alpha * x + beta (elementwise); out may alias x. */
    void affine(Tensor x, float alpha, float beta, Tensor out);

    /** out = alpha * a + beta * b, same shapes; out may alias a or b. */
    void axpby(float alpha, Tensor a, float beta, Tensor b, Tensor out);

    // ---------------------------------------------------------------- reductions and softmax (F32)

    /** Reduces {@code axis} away: out's shape is x's shape without that axis. */
    void reduce(ReduceOp op, Tensor x, int axis, Tensor out);

    /** Numerically stable softmax over the last axis. */
    void softmax(Tensor x, Tensor out);

    // ---------------------------------------------------------------- matrix products

    /**
     * Row-major (batched) product out = alpha * op(a) · op(b) + beta * out. Shapes: a is [m,k] ([k,m] if
     * transA), b is [k,n] ([n,k] if transB), out is [m,n]; each may carry one leading batch dimension, and a
     * 2-D operand is broadcast over the batch of the other. F32 inputs use FP32 or TF32; BF16 inputs use BF16 and
     * write an F32 or BF16 {@code out}.
     */
    void gemm(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, float alpha, float beta,
              GemmPrecision precision);

    // ---------------------------------------------------------------- random numbers

    /**
     * Fills an F32 tensor with standard normals from the counter-based generator {@link Philox}: element i gets
     * {@link Philox#normal(long, long)} with counter {@code offset + i}. Same seed, same numbers on every backend.
     */
    void randomNormal(Tensor out, long seed, long offset);

    /** Uniform (0,1) values: element i gets {@link Philox#uniform(long, long)} with counter {@code offset + i}. */
    void randomUniform(Tensor out, long seed, long offset);

    // ---------------------------------------------------------------- conversion and sync

    /** Converts between F32 and BF16 (round to nearest even, NaN kept), or F32 and I32 (truncation). */
    void convert(Tensor x, Tensor out);

    /** Waits until all queued work is done (CPU: no-op). */
    void synchronize();

    // ---------------------------------------------------------------- memory accounting

    /**
     * The most bytes this backend's device held in tensors and scratch buffers at any one time since the last
     * {@link #resetPeakMemory()} (or since it opened), or -1 where memory is not tracked (the CPU). Host-side
     * bookkeeping: it needs no synchronize.
     */
    default long peakMemoryBytes() {
        return -1;
    }

    /** Starts a new peak window: the peak becomes what is in use now. A no-op where memory is not tracked. */
    default void resetPeakMemory() {
    }

    /** Losses and optimizer steps on this backend. */
    default TrainingOps training() {
        throw new UnsupportedOperationException(describe() + " does not implement the training ops yet");
    }

    /** The network layers of facm-spec.md §3 on this backend. */
    default NetworkOps network() {
        throw new UnsupportedOperationException(describe() + " does not implement the network ops yet");
    }

    @Override
    void close();

    // ---------------------------------------------------------------- conveniences that allocate

    default Tensor zeros(DType dtype, int... shape) {
        Tensor t = empty(dtype, shape);
        fill(t, 0f);
        return t;
    }

    default Tensor unary(UnaryOp op, Tensor x) {
        Tensor out = empty(x.dtype(), x.shape());
        unary(op, x, out);
        return out;
    }

    default Tensor binary(BinaryOp op, Tensor a, Tensor b) {
        Tensor out = empty(a.dtype(), a.shape());
        binary(op, a, b, out);
        return out;
    }

    default Tensor reduce(ReduceOp op, Tensor x, int axis) {
        Tensor out = empty(x.dtype(), Shapes.without(x.shape(), Shapes.axis(axis, x.rank())));
        reduce(op, x, axis, out);
        return out;
    }

    default Tensor softmax(Tensor x) {
        Tensor out = empty(x.dtype(), x.shape());
        softmax(x, out);
        return out;
    }

    /** out = op(a)·op(b) as a new tensor; BF16 inputs give an F32 result. */
    default Tensor matmul(Tensor a, boolean transA, Tensor b, boolean transB, GemmPrecision precision) {
        int m = transA ? a.dim(-1) : a.dim(-2);
        int n = transB ? b.dim(-2) : b.dim(-1);
        int batch = a.rank() == 3 ? a.dim(0) : b.rank() == 3 ? b.dim(0) : -1;
        Tensor out = batch < 0 ? empty(DType.F32, m, n) : empty(DType.F32, batch, m, n);
        gemm(a, transA, b, transB, out, 1f, 0f, precision);
        return out;
    }

    /**
     * Linear layer y = x·Wᵀ + b (PyTorch layout: W is [out, in]). x is [..., in] (all leading dimensions are rows of one
     * GEMM), out is [..., out], bias [out] or null. F32 weights use {@code precision} FP32 or TF32; BF16 x and W use BF16.
     */
    default void linear(Tensor x, Tensor weight, Tensor bias, Tensor out, GemmPrecision precision) {
        int in = weight.dim(1);
        int outF = weight.dim(0);
        if (x.dim(-1) != in || out.dim(-1) != outF || out.numel() / outF != x.numel() / in) {
            throw new ShapeException("linear: x " + x.describe() + ", weight " + weight.describe() + ", out "
                    + out.describe() + " do not fit y = x·Wᵀ");
        }
        int rows = (int) (x.numel() / in);
        Tensor out2 = out.reshape(rows, outF);
        gemm(x.reshape(rows, in), false, weight, true, out2, 1f, 0f, precision);
        if (bias != null) {
            binary(BinaryOp.ADD, out2, bias, out2);
        }
    }

    /**
     * The bias gradient of a linear layer from its output gradient gOut [rows, cols] (F32): gBias [cols] += Σ_rows
     * gOut, and, when gOutBf16 [rows, cols] is not null, gOutBf16 = bf16(gOut), the operand of the backward's bf16
     * GEMMs (gBias may be null then). This default is the reference: convert, reduce SUM over axis 0, axpby; a
     * backend may do all of it in one read of gOut with the same bits.
     */
    default void linearBiasGradient(Tensor gOut, Tensor gOutBf16, Tensor gBias) {
        if (gOutBf16 != null) {
            convert(gOut, gOutBf16);
        }
        if (gBias != null) {
            try (Tensor sum = empty("bias gradient of " + gOut.name(), DType.F32, gOut.dim(-1))) {
                reduce(ReduceOp.SUM, gOut, 0, sum);
                axpby(1f, gBias, 1f, sum, gBias);
            }
        }
    }

    default Tensor convert(Tensor x, DType to) {
        Tensor out = empty(to, x.shape());
        convert(x, out);
        return out;
    }
}
