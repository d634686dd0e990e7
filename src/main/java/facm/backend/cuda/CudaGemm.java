package facm.backend.cuda;

import facm.cuda.CudaDevice;
import facm.cuda.DeviceBuffer;
import facm.cuda.KernelProfile;
import facm.cuda.blas.CublasLt;
import facm.cuda.blas.GemmProfileLabel;
import facm.cuda.blas.GemmKind;
import facm.cuda.blas.RowMajorGemm;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;

/**
 * {@link facm.tensor.Backend#gemm} on cuBLASLt: out = alpha · op(a) · op(b) + beta · out, row-major, with one
 * optional leading batch dimension and a 2-D operand broadcast over the batch (batch stride 0). Shapes and dtypes
 * are checked exactly as the CPU reference checks them. The cuBLASLt handle and a 32 MiB workspace are created on
 * the first product, so a backend that never multiplies needs neither the library nor the memory.
 */
final class CudaGemm implements AutoCloseable {
    static final long WORKSPACE_BYTES = 32L << 20;

    private final CudaDevice device;
    private final ElementwiseKernels elementwise;
    private CublasLt cublasLt;
    private DeviceBuffer workspace;

    CudaGemm(CudaDevice device, ElementwiseKernels elementwise) {
        this.device = device;
        this.elementwise = elementwise;
    }

    /** Checks the operands, then queues the product on the device's main stream. */
    void gemm(CudaTensor a, boolean transA, CudaTensor b, boolean transB, CudaTensor out, float alpha, float beta,
              GemmPrecision precision) {
        Plan p = plan(a, transA, b, transB, out, precision);
        if (out.numel() == 0) {
            return;
        }
        if (p.k() == 0) {
            scaleOut(out, beta); // an empty sum, which cuBLASLt does not take as a product
            return;
        }
        run(p, a, b, out, alpha, beta);
    }

    /**
     * {@link facm.tensor.Backend#linear} with the bias fused into cuBLASLt's epilogue (CUBLASLT_EPILOGUE_BIAS): out =
     * x·Wᵀ + bias in one pass over out, the bias added to the fp32 accumulator and the sum rounded once to out's
     * dtype. BF16 precision only (x and W bf16, out f32 or bf16); the bias has out's dtype (cuBLASLt's default bias
     * type), shape [out features].
     */
    void linearBias(CudaTensor x, CudaTensor weight, CudaTensor bias, CudaTensor out, GemmPrecision precision) {
        String what = "linear(x " + x.describe() + ", weight " + weight.describe() + ", bias " + bias.describe()
                + " -> " + out.describe() + ", " + precision + ")";
        if (precision != GemmPrecision.BF16) {
            throw new ShapeException(what + ": the fused bias epilogue is used for BF16 products only");
        }
        if (weight.rank() != 2) {
            throw new ShapeException(what + ": weight must be [out, in]");
        }
        int in = weight.dim(1);
        int outF = weight.dim(0);
        if (x.rank() < 1 || out.rank() < 1 || x.dim(-1) != in || out.dim(-1) != outF
                || out.numel() / Math.max(1, outF) != x.numel() / Math.max(1, in)) {
            throw new ShapeException(what + ": x, weight and out do not fit y = x·Wᵀ");
        }
        Shapes.requireShape(what + ": bias [out features]", bias, outF);
        if (bias.dtype() != out.dtype()) {
            throw new ShapeException(what + ": the bias must have out's dtype " + out.dtype().lower()
                    + " (cuBLASLt's bias type for this output)");
        }
        if (bias.sharesStorageWith(out)) {
            throw new ShapeException(what + ": out must not share storage with the bias");
        }
        int rows = in == 0 ? (int) (out.numel() / Math.max(1, outF)) : (int) (x.numel() / in);
        CudaTensor x2 = (CudaTensor) x.reshape(rows, in);
        CudaTensor out2 = (CudaTensor) out.reshape(rows, outF);
        Plan p = plan(x2, false, weight, true, out2, precision);
        if (out.numel() == 0) {
            return;
        }
        if (p.k() == 0) {
            throw new ShapeException(what + ": a bias-only product (no input features) is not supported");
        }
        RowMajorGemm g = new RowMajorGemm(p.kind(), false, true, p.m(), p.n(), p.k(), 1, p.strideA(), p.strideB(),
                p.strideC(), 1f, 0f);
        CublasLt lt = cublasLt();
        int profiled = KernelProfile.on() ? KernelProfile.begin(device.stream()) : KernelProfile.NOT_RECORDED;
        lt.gemmBias(device.stream().address(), g, x2.address(), weight.address(), out2.address(), bias.address(),
                workspace.address(), WORKSPACE_BYTES);
        KernelProfile.end(profiled, device.stream(), profiled == KernelProfile.NOT_RECORDED ? null
                : GemmProfileLabel.of(g, true));
    }

    /** out = beta * out for an empty product; beta 0 writes zeros (old NaN garbage must not survive). */
    private void scaleOut(CudaTensor out, float beta) {
        long n = out.numel();
        if (out.dtype() == DType.F32) {
            if (beta == 0f) {
                elementwise.fill32(out.address(), n, 0);
            } else {
                elementwise.affine(out.address(), out.address(), n, beta, 0f);
            }
            return;
        }
        if (beta == 0f) {
            elementwise.fill16(out.address(), n, (short) 0);
            return;
        }
        try (DeviceBuffer tmp = device.arena().allocate(n * 4, "gemm k=0 scratch for " + out.describe())) {
            elementwise.convert(DType.BF16, DType.F32, out.address(), tmp.address(), n);
            elementwise.affine(tmp.address(), tmp.address(), n, beta, 0f);
            elementwise.convert(DType.F32, DType.BF16, tmp.address(), out.address(), n);
        }
    }

    /** The validated problem: sizes, batch and the cuBLASLt mode. */
    record Plan(GemmKind kind, boolean transA, boolean transB, int m, int n, int k, int batch, long strideA,
                long strideB, long strideC) {
    }

    /** Checks the operands like CpuGemm does and derives the product's sizes. */
    private static Plan plan(CudaTensor a, boolean transA, CudaTensor b, boolean transB, CudaTensor out,
                     GemmPrecision precision) {
        String what = "gemm(" + a.describe() + (transA ? "ᵀ" : "") + " · " + b.describe() + (transB ? "ᵀ" : "")
                + " -> " + out.describe() + ", " + precision + ")";
        if (precision == null) {
            throw new ShapeException(what + ": precision must not be null");
        }
        DType in = precision == GemmPrecision.BF16 ? DType.BF16 : DType.F32;
        if (a.dtype() != in || b.dtype() != in) {
            throw new ShapeException(what + ": precision " + precision + " needs " + in.lower() + " inputs");
        }
        boolean outOk = out.dtype() == DType.F32 || (precision == GemmPrecision.BF16 && out.dtype() == DType.BF16);
        if (!outOk) {
            throw new ShapeException(what + ": out must be f32" + (in == DType.BF16 ? " or bf16" : ""));
        }
        if (a.rank() < 2 || a.rank() > 3 || b.rank() < 2 || b.rank() > 3) {
            throw new ShapeException(what + ": a and b must have rank 2 or 3 ([batch,] rows, cols)");
        }
        int m = transA ? a.dim(-1) : a.dim(-2);
        int k = transA ? a.dim(-2) : a.dim(-1);
        int kb = transB ? b.dim(-1) : b.dim(-2);
        int n = transB ? b.dim(-2) : b.dim(-1);
        if (k != kb) {
            throw new ShapeException(what + ": inner dimensions differ: op(a) is " + m + "x" + k + ", op(b) is "
                    + kb + "x" + n);
        }
        if (a.rank() == 3 && b.rank() == 3 && a.dim(0) != b.dim(0)) {
            throw new ShapeException(what + ": batch sizes differ: " + a.dim(0) + " vs " + b.dim(0));
        }
        boolean batched = a.rank() == 3 || b.rank() == 3;
        int batch = !batched ? 1 : a.rank() == 3 ? a.dim(0) : b.dim(0);
        Shapes.requireShape(what + ": out", out, batched ? new int[] {batch, m, n} : new int[] {m, n});
        if (out.sharesStorageWith(a) || out.sharesStorageWith(b)) {
            throw new ShapeException(what + ": out must not share storage with a or b");
        }
        GemmKind kind = switch (precision) {
            case FP32 -> GemmKind.F32;
            case TF32 -> GemmKind.TF32;
            case BF16 -> out.dtype() == DType.BF16 ? GemmKind.BF16_BF16OUT : GemmKind.BF16_F32OUT;
        };
        long strideA = a.rank() == 3 ? (long) m * k : 0;
        long strideB = b.rank() == 3 ? (long) k * n : 0;
        return new Plan(kind, transA, transB, m, n, k, batch, strideA, strideB, (long) m * n);
    }

    /** Queues the product on the device's main stream. The plan must have m, n, k and batch all non-zero. */
    private void run(Plan p, CudaTensor a, CudaTensor b, CudaTensor out, float alpha, float beta) {
        RowMajorGemm g = new RowMajorGemm(p.kind(), p.transA(), p.transB(), p.m(), p.n(), p.k(), p.batch(),
                p.strideA(), p.strideB(), p.strideC(), alpha, beta);
        CublasLt lt = cublasLt();
        int profiled = KernelProfile.on() ? KernelProfile.begin(device.stream()) : KernelProfile.NOT_RECORDED;
        lt.gemm(device.stream().address(), g, a.address(), b.address(), out.address(), workspace.address(),
                WORKSPACE_BYTES);
        KernelProfile.end(profiled, device.stream(), profiled == KernelProfile.NOT_RECORDED ? null
                : GemmProfileLabel.of(g, false));
    }

    /** The handle and its workspace, created on the first product. */
    private CublasLt cublasLt() {
        if (cublasLt == null) {
            CublasLt opened = CublasLt.open();
            try {
                workspace = device.arena().allocate(WORKSPACE_BYTES, "cuBLASLt workspace");
            } catch (RuntimeException e) {
                opened.close();
                throw e;
            }
            cublasLt = opened;
        }
        return cublasLt;
    }

    @Override
    public void close() {
        if (cublasLt != null) {
            cublasLt.close();
            cublasLt = null;
        }
        if (workspace != null) {
            workspace.close();
            workspace = null;
        }
    }
}
