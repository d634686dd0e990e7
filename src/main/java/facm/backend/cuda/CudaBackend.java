package facm.backend.cuda;

import facm.cuda.Cuda;
import facm.cuda.CudaDevice;
import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelArg;
import facm.cuda.KernelLibrary;
import facm.tensor.Backend;
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
    private final CudaTensorTransfers transfers;
    private final ElementwiseKernels elementwise;
    private final CudaElementwiseOps elementwiseOps;
    private final CudaReductionOps reductionOps;
    private final RandomKernels random;
    private final Kernel noop;
    private final CudaGemm gemm;
    private final CudaBiasEpilogueLinear biasLinear;
    private volatile boolean closed;

    private CudaBackend(CudaDevice device, boolean ownsDevice) {
        this.device = device;
        this.ownsDevice = ownsDevice;
        device.makeCurrent();
        this.stream = device.stream();
        this.kernels = device.kernels(); // one-line CudaUnavailableException when the jar has no kernels for this GPU
        this.transfers = new CudaTensorTransfers(this, stream);
        this.elementwise = new ElementwiseKernels(kernels, stream);
        this.elementwiseOps = new CudaElementwiseOps(this, elementwise);
        this.reductionOps = new CudaReductionOps(this, new ReductionKernels(kernels, stream));
        this.random = new RandomKernels(kernels, stream);
        this.noop = kernels.kernel("noop", KernelArg.I32);
        this.gemm = new CudaGemm(device, elementwise);
        this.biasLinear = new CudaBiasEpilogueLinear(this, gemm);
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
        return transfers.upload("upload", name, DType.F32, shape, data.length, MemorySegment.ofArray(data));
    }

    @Override
    public CudaTensor upload(String name, int[] data, int... shape) {
        return transfers.upload("upload", name, DType.I32, shape, data.length, MemorySegment.ofArray(data));
    }

    @Override
    public CudaTensor uploadBf16(String name, short[] bits, int... shape) {
        return transfers.upload("uploadBf16", name, DType.BF16, shape, bits.length, MemorySegment.ofArray(bits));
    }

    @Override
    public float[] download(Tensor t) {
        return transfers.download(t);
    }

    @Override
    public int[] downloadInts(Tensor t) {
        return transfers.downloadInts(t);
    }

    @Override
    public short[] downloadBf16(Tensor t) {
        return transfers.downloadBf16(t);
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
        elementwiseOps.fill(out, value);
    }

    // ---------------------------------------------------------------- elementwise

    @Override
    public void unary(UnaryOp op, Tensor x, Tensor out) {
        elementwiseOps.unary(op, x, out);
    }

    @Override
    public void binary(BinaryOp op, Tensor a, Tensor b, Tensor out) {
        elementwiseOps.binary(op, a, b, out);
    }

    @Override
    public void affine(Tensor x, float alpha, float beta, Tensor out) {
        elementwiseOps.affine(x, alpha, beta, out);
    }

    @Override
    public void axpby(float alpha, Tensor a, float beta, Tensor b, Tensor out) {
        elementwiseOps.axpby(alpha, a, beta, b, out);
    }

    // ---------------------------------------------------------------- reductions and softmax

    @Override
    public void reduce(ReduceOp op, Tensor x, int axis, Tensor out) {
        reductionOps.reduce(op, x, axis, out);
    }

    @Override
    public void softmax(Tensor x, Tensor out) {
        reductionOps.softmax(x, out);
    }

    /** One read of gOut for the bf16 operand and the bias gradient (ReductionKernels.sumRows); else the default. */
    @Override
    public void linearBiasGradient(Tensor gOut, Tensor gOutBf16, Tensor gBias) {
        if (gBias == null || !reductionOps.linearBiasGradient(gOut, gOutBf16, gBias)) {
            Backend.super.linearBiasGradient(gOut, gOutBf16, gBias);
        }
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
        biasLinear.linear(x, weight, bias, out, precision);
    }

    /** The interface's linear (gemm, then the bias added by {@link #binary}), for {@link CudaBiasEpilogueLinear}. */
    void unfusedLinear(Tensor x, Tensor weight, Tensor bias, Tensor out, GemmPrecision precision) {
        Backend.super.linear(x, weight, bias, out, precision);
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
        elementwiseOps.convert(x, out);
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

    CudaTensor requireF32(String op, Tensor t) {
        CudaTensor c = require(op, t);
        Shapes.requireDType(op, c, DType.F32);
        return c;
    }

    void requireOpenBackend(String op) {
        if (closed) {
            throw new IllegalStateException(op + ": the cuda backend (" + device + ") was closed");
        }
        device.makeCurrent();
    }
}
