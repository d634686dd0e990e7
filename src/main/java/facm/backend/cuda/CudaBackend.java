package facm.backend.cuda;

import facm.cuda.Cuda;
import facm.cuda.CudaDevice;
import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelArg;
import facm.cuda.KernelLibrary;
import facm.tensor.Backend;
import facm.tensor.Bf16;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.Device;
import facm.tensor.GemmPrecision;
import facm.tensor.ReduceOp;
import facm.tensor.ShapeException;
import facm.tensor.NetworkOps;
import facm.tensor.Shapes;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import facm.tensor.UnaryOp;
import jcuda.driver.JCudaDriver;

import java.lang.foreign.MemorySegment;
import java.util.Locale;
import java.util.Objects;

/**
 * The GPU backend: tensors are {@link CudaTensor}s in the device's caching arena, ops are our kernels (kernels/*.cu)
 * and cuBLASLt, all queued on the device's main stream. Ops return as soon as the work is queued; nothing waits for
 * the GPU except {@link #download}, {@link #downloadInts}, {@link #downloadBf16}, uploads and {@link #synchronize()}.
 * No op allocates device memory except for the outputs of the allocating conveniences.
 *
 * <p>Shape and dtype rules and their messages are those of the CPU reference (facm.backend.cpu.CpuBackend);
 * numerics are stated per kernel file and checked against the CPU in the gpu-tagged tests.
 */
public final class CudaBackend implements Backend {
    private CudaNetworkOps network;
    private CudaTrainingOps training;

    private final CudaDevice device;
    private final boolean ownsDevice;
    private final CudaStream stream;
    private final KernelLibrary kernels;
    private final ElementwiseKernels elementwise;
    private final ReductionKernels reductions;
    private final RandomKernels random;
    private final Kernel noop;
    private final CudaGemm gemm;
    private volatile boolean closed;

    private CudaBackend(CudaDevice device, boolean ownsDevice) {
        this.device = device;
        this.ownsDevice = ownsDevice;
        device.makeCurrent();
        this.stream = device.stream();
        this.kernels = device.kernels(); // one-line CudaUnavailableException when the jar has no kernels for this GPU
        this.elementwise = new ElementwiseKernels(kernels, stream);
        this.reductions = new ReductionKernels(kernels, stream);
        this.random = new RandomKernels(kernels, stream);
        this.noop = kernels.kernel("noop", KernelArg.I32);
        this.gemm = new CudaGemm(device, elementwise);
    }

    /** Opens GPU {@code ordinal} for this backend alone; {@link #close()} releases the device. */
    public static CudaBackend open(int ordinal) {
        CudaDevice d = CudaDevice.open(ordinal);
        try {
            return new CudaBackend(d, true);
        } catch (RuntimeException e) {
            d.close();
            throw e;
        }
    }

    /** A backend on an already open device (shared, e.g. by tests); {@link #close()} leaves the device open. */
    public static CudaBackend on(CudaDevice device) {
        return new CudaBackend(device, false);
    }

    public CudaDevice cudaDevice() {
        return device;
    }

    @Override
    public Device device() {
        return Device.cuda(device.ordinal());
    }

    /** e.g. {@code cuda:0 NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB, SASS sm_90)}. */
    @Override
    public String describe() {
        int cc = device.computeCapability();
        return String.format(Locale.ROOT, "cuda:%d %s (sm_%d, %.1f GiB, %s)", device.ordinal(), device.name(), cc,
                device.totalMemory() / (double) (1L << 30), kernels.codePathFor(cc));
    }

    /**
     * {@code t} as a CudaTensor of this backend, for op implementations outside this package. Throws if it belongs
     * to another backend or has been closed; {@code op} names the caller in the message.
     */
    public CudaTensor require(String op, Tensor t) {
        requireOpenBackend(op);
        return Shapes.owned(op, t, this, CudaTensor.class);
    }

    // ---------------------------------------------------------------- memory and transfer

    @Override
    public CudaTensor empty(String name, DType dtype, int... shape) {
        requireOpenBackend("empty");
        Objects.requireNonNull(dtype, "empty: dtype is null");
        long bytes = Shapes.numel(shape) * dtype.bytes();
        String what = (name == null || name.isEmpty() ? "tensor" : name) + " " + dtype.lower() + Shapes.str(shape);
        return CudaTensor.wrap(this, name, dtype, shape, device.arena().allocate(bytes, what));
    }

    @Override
    public CudaTensor upload(String name, float[] data, int... shape) {
        checkUploadLength("upload", name, data.length, shape);
        return uploaded(name, DType.F32, shape, MemorySegment.ofArray(data));
    }

    @Override
    public CudaTensor upload(String name, int[] data, int... shape) {
        checkUploadLength("upload", name, data.length, shape);
        return uploaded(name, DType.I32, shape, MemorySegment.ofArray(data));
    }

    @Override
    public CudaTensor uploadBf16(String name, short[] bits, int... shape) {
        checkUploadLength("uploadBf16", name, bits.length, shape);
        return uploaded(name, DType.BF16, shape, MemorySegment.ofArray(bits));
    }

    private CudaTensor uploaded(String name, DType dtype, int[] shape, MemorySegment host) {
        CudaTensor t = empty(name, dtype, shape);
        try {
            HostTransfers.toDevice(stream, host, t.buffer(), "upload " + t.describe());
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    private void checkUploadLength(String op, String name, int length, int[] shape) {
        requireOpenBackend(op);
        Shapes.requireHostLength(op, name, length, shape);
    }

    @Override
    public float[] download(Tensor t) {
        CudaTensor x = require("download", t);
        Shapes.requireDType("download", x, DType.F32, DType.BF16);
        if (x.dtype() == DType.BF16) {
            return Bf16.toFloats(downloadBf16(x));
        }
        float[] values = new float[HostTransfers.hostLength("download", x)];
        HostTransfers.toHost(stream, x.buffer(), MemorySegment.ofArray(values), "download " + x.describe());
        return values;
    }

    @Override
    public int[] downloadInts(Tensor t) {
        CudaTensor x = require("downloadInts", t);
        Shapes.requireDType("downloadInts", x, DType.I32);
        int[] values = new int[HostTransfers.hostLength("downloadInts", x)];
        HostTransfers.toHost(stream, x.buffer(), MemorySegment.ofArray(values), "downloadInts " + x.describe());
        return values;
    }

    @Override
    public short[] downloadBf16(Tensor t) {
        CudaTensor x = require("downloadBf16", t);
        Shapes.requireDType("downloadBf16", x, DType.BF16);
        short[] bits = new short[HostTransfers.hostLength("downloadBf16", x)];
        HostTransfers.toHost(stream, x.buffer(), MemorySegment.ofArray(bits), "downloadBf16 " + x.describe());
        return bits;
    }


    @Override
    public void copy(Tensor src, Tensor dst) {
        CudaTensor s = require("copy", src);
        CudaTensor d = require("copy", dst);
        if (s.dtype() != d.dtype() || s.numel() != d.numel()) {
            throw new ShapeException("copy: " + s.describe() + " -> " + d.describe()
                    + ": dtype and element count must match");
        }
        if (s.bytes() == 0 || s.sharesStorageWith(d)) {
            return;
        }
        Cuda.check(JCudaDriver.cuMemcpyDtoDAsync(d.buffer().ptr(), s.buffer().ptr(), s.bytes(), stream.handle()),
                "cuMemcpyDtoDAsync(copy " + s.describe() + " -> " + d.describe() + ")");
    }

    @Override
    public void fill(Tensor out, float value) {
        CudaTensor o = require("fill", out);
        Shapes.requireDType("fill", o, DType.F32, DType.BF16);
        if (o.dtype() == DType.F32) {
            elementwise.fill32(o.address(), o.numel(), Float.floatToRawIntBits(value));
        } else {
            elementwise.fill16(o.address(), o.numel(), Bf16.fromFloat(value));
        }
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void unary(UnaryOp op, Tensor x, Tensor out) {
        String what = "unary " + Objects.requireNonNull(op, "unary: op is null");
        CudaTensor in = requireF32(what, x);
        CudaTensor o = requireF32(what, out);
        Shapes.requireSame(what, in, o);
        elementwise.unary(op, in.address(), o.address(), in.numel());
    }

    @Override
    public void binary(BinaryOp op, Tensor a, Tensor b, Tensor out) {
        String what = "binary " + Objects.requireNonNull(op, "binary: op is null");
        CudaTensor x = requireF32(what, a);
        CudaTensor y = requireF32(what, b);
        CudaTensor o = requireF32(what, out);
        if (!(x.sameShape(y) || y.numel() == 1 || Shapes.isSuffix(x.shape(), y.shape()))) {
            throw new ShapeException(what + ": b " + y.describe() + " must have a's shape, equal a's trailing "
                    + "dimensions, or hold one element; a is " + x.describe());
        }
        Shapes.requireSame(what + " (out vs a)", o, x);
        elementwise.binary(op, x.address(), y.address(), o.address(), x.numel(), y.numel());
    }

    @Override
    public void affine(Tensor x, float alpha, float beta, Tensor out) {
        CudaTensor in = requireF32("affine", x);
        CudaTensor o = requireF32("affine", out);
        Shapes.requireSame("affine", in, o);
        elementwise.affine(in.address(), o.address(), in.numel(), alpha, beta);
    }

    @Override
    public void axpby(float alpha, Tensor a, float beta, Tensor b, Tensor out) {
        CudaTensor x = requireF32("axpby", a);
        CudaTensor y = requireF32("axpby", b);
        CudaTensor o = requireF32("axpby", out);
        Shapes.requireSame("axpby (a vs b)", x, y);
        Shapes.requireSame("axpby (a vs out)", x, o);
        elementwise.axpby(x.address(), y.address(), o.address(), x.numel(), alpha, beta);
    }

    // ---------------------------------------------------------------- reductions and softmax

    @Override
    public void reduce(ReduceOp op, Tensor x, int axis, Tensor out) {
        String what = "reduce " + Objects.requireNonNull(op, "reduce: op is null") + " axis " + axis;
        CudaTensor in = requireF32(what, x);
        CudaTensor o = requireF32(what, out);
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

    @Override
    public void softmax(Tensor x, Tensor out) {
        CudaTensor in = requireF32("softmax", x);
        CudaTensor o = requireF32("softmax", out);
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

    // ---------------------------------------------------------------- matrix products

    @Override
    public void gemm(Tensor a, boolean transA, Tensor b, boolean transB, Tensor out, float alpha, float beta,
                     GemmPrecision precision) {
        gemm.gemm(require("gemm", a), transA, require("gemm", b), transB, require("gemm", out), alpha, beta,
                precision);
    }

    /**
     * BF16 products with a bias fuse it into cuBLASLt's epilogue (one pass over out, the bias added to the fp32
     * accumulator, out f32 or bf16 with a bias of out's dtype); everything else is the interface's gemm + bias add,
     * so FP32/TF32 results stay exactly those of {@link #gemm} followed by {@link #binary}.
     */
    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor out, GemmPrecision precision) {
        if (bias == null || precision != GemmPrecision.BF16) {
            Backend.super.linear(x, weight, bias, out, precision);
            return;
        }
        CudaTensor cx = require("linear", x), cw = require("linear", weight), cb = require("linear", bias);
        CudaTensor co = require("linear", out);
        if (co.dtype() == DType.BF16 && !epilogueAligned(cx, cw, cb, co)) {
            // Seen on an H200: with rows of 70 and 17 bf16 elements the epilogue's result was 3 bf16 steps off
            // where product and bias nearly cancel (the product rounded to bf16 before the bias was added). The
            // fp32 product, the fp32 bias add and one rounding are the op's contract: keep it where the rows are
            // not 16-byte multiples (no real layer of ours has such rows; they all take the fused path).
            linearThroughF32(cx, cw, cb, co);
            return;
        }
        gemm.linearBias(cx, cw, cb, co, precision);
    }

    /** Whether every operand of a bias-epilogue product has 16-byte rows and a 16-byte aligned start. */
    private static boolean epilogueAligned(CudaTensor... ts) {
        for (CudaTensor t : ts) {
            long rowBytes = (long) t.dim(-1) * t.dtype().bytes();
            if (rowBytes % 16 != 0 || t.address() % 16 != 0) {
                return false;
            }
        }
        return true;
    }

    /** y = bf16(x·Wᵀ + b) through an fp32 product and an fp32 bias add, rounded once. */
    private void linearThroughF32(CudaTensor x, CudaTensor weight, CudaTensor bias, CudaTensor out) {
        try (Tensor f32 = empty("linear f32 out", DType.F32, out.shape());
             Tensor b32 = bias.dtype() == DType.F32 ? null : convert(bias, DType.F32)) {
            Backend.super.linear(x, weight, b32 == null ? bias : b32, f32, GemmPrecision.BF16);
            convert(f32, out);
        }
    }

    // ---------------------------------------------------------------- random numbers

    @Override
    public void randomNormal(Tensor out, long seed, long offset) {
        CudaTensor o = requireF32("randomNormal", out);
        random.normal(o.address(), o.numel(), seed, offset);
    }

    @Override
    public void randomUniform(Tensor out, long seed, long offset) {
        CudaTensor o = requireF32("randomUniform", out);
        random.uniform(o.address(), o.numel(), seed, offset);
    }

    // ---------------------------------------------------------------- conversion and sync

    @Override
    public void convert(Tensor x, Tensor out) {
        CudaTensor in = require("convert", x);
        CudaTensor o = require("convert", out);
        Shapes.requireSame("convert", in, o);
        DType from = in.dtype();
        DType to = o.dtype();
        if (from == to) {
            copy(in, o);
            return;
        }
        if (!ElementwiseKernels.converts(from, to)) {
            throw new ShapeException("convert: " + in.describe() + " -> " + out.describe() + " is not supported "
                    + "(supported: f32<->bf16, f32<->i32)");
        }
        elementwise.convert(from, to, in.address(), o.address(), in.numel());
    }

    @Override
    public synchronized NetworkOps network() {
        if (network == null) {
            network = new CudaNetworkOps(this);
        }
        return network;
    }

    @Override
    public synchronized TrainingOps training() {
        if (training == null) {
            training = new CudaTrainingOps(this);
        }
        return training;
    }

    @Override
    public void synchronize() {
        requireOpenBackend("synchronize");
        stream.synchronize();
    }

    /**
     * The device arena's peak of bytes in use (size-class rounded blocks handed out, not counting the arena's cache of
     * freed blocks): every backend on this device shares it, so a teacher model on the same GPU counts too.
     */
    @Override
    public long peakMemoryBytes() {
        requireOpenBackend("peakMemoryBytes");
        return device.arena().stats().peakInUseBytes();
    }

    @Override
    public void resetPeakMemory() {
        requireOpenBackend("resetPeakMemory");
        device.arena().resetPeak();
    }

    /** Queues the empty kernel of kernels/launch.cu (one block of one thread): the fixed cost of a launch. */
    public void launchNoop() {
        requireOpenBackend("launchNoop");
        noop.launch(stream, 1, 1, 1, 1, 1, 1, 0, 0);
    }

    /**
     * Waits for queued work, then releases the cuBLASLt state and, if this backend opened its device, the device.
     * Tensors still open lose their memory with the device; later ops throw.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.makeCurrent();
        try {
            stream.synchronize();
        } finally {
            if (network != null) {
                network.close();
            }
            if (training != null) {
                training.close();
            }
            gemm.close();
            if (ownsDevice) {
                device.close();
            }
        }
    }

    @Override
    public String toString() {
        return describe();
    }

    // ---------------------------------------------------------------- checks

    private CudaTensor requireF32(String op, Tensor t) {
        CudaTensor c = require(op, t);
        Shapes.requireDType(op, c, DType.F32);
        return c;
    }

    private void requireOpenBackend(String op) {
        if (closed) {
            throw new IllegalStateException(op + ": the cuda backend (" + device + ") was closed");
        }
        device.makeCurrent();
    }
}
