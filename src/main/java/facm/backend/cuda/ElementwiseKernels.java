package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.port.Tuning;
import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.UnaryOp;

import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * Launchers for kernels/elementwise.cu. Arguments are device addresses and element counts that {@link CudaBackend}
 * has already checked; an empty range queues nothing. Every kernel is a 1-D grid-stride loop.
 */
final class ElementwiseKernels {
    /** Threads per block unless the tuning table (facm/kernels/tuning.table, an autotune override) says otherwise. */
    private static final int DEFAULT_BLOCK = 256;

    private final CudaStream stream;
    private final Kernel unary;
    private final Kernel binary;
    private final Kernel affine;
    private final Kernel axpby;
    private final Kernel fillB32;
    private final Kernel fillB16;
    private final Kernel f32ToBf16;
    private final Kernel bf16ToF32;
    private final Kernel f32ToI32;
    private final Kernel i32ToF32;

    // Block sizes per family from the tuning table (all grid-stride kernels without launch bounds: any size to 1024).
    private final int unaryBlock;
    private final int binaryBlock;
    private final int affineBlock;
    private final int axpbyBlock;
    private final int fillBlock;
    private final int convertBlock;

    ElementwiseKernels(KernelLibrary lib, CudaStream stream) {
        this.stream = stream;
        Tuning tuning = Tuning.current();
        int cc = lib.computeCapability();
        unaryBlock = tuning.intValue("unary.fwd", "block", cc, DEFAULT_BLOCK);
        binaryBlock = tuning.intValue("binary.fwd", "block", cc, DEFAULT_BLOCK);
        affineBlock = tuning.intValue("affine.fwd", "block", cc, DEFAULT_BLOCK);
        axpbyBlock = tuning.intValue("axpby.fwd", "block", cc, DEFAULT_BLOCK);
        fillBlock = tuning.intValue("fill.fwd", "block", cc, DEFAULT_BLOCK);
        convertBlock = tuning.intValue("convert.fwd", "block", cc, DEFAULT_BLOCK);
        unary = lib.kernel("unary_f32", I32, PTR, PTR, I64);
        binary = lib.kernel("binary_f32", I32, PTR, PTR, PTR, I64, I64);
        affine = lib.kernel("affine_f32", PTR, PTR, I64, F32, F32);
        axpby = lib.kernel("axpby_f32", PTR, PTR, PTR, I64, F32, F32);
        fillB32 = lib.kernel("fill_b32", PTR, I64, I32);
        fillB16 = lib.kernel("fill_b16", PTR, I64, I32);
        f32ToBf16 = lib.kernel("convert_f32_bf16", PTR, PTR, I64);
        bf16ToF32 = lib.kernel("convert_bf16_f32", PTR, PTR, I64);
        f32ToI32 = lib.kernel("convert_f32_i32", PTR, PTR, I64);
        i32ToF32 = lib.kernel("convert_i32_f32", PTR, PTR, I64);
    }

    /** out[i] = op(x[i]); the kernel's op codes are UnaryOp's ordinals. */
    void unary(UnaryOp op, long x, long out, long n) {
        if (n > 0) {
            unary.launch1d(stream, n, unaryBlock, op.ordinal(), x, out, n);
        }
    }

    /** out[i] = op(a[i], b[i mod bn]), bn dividing n (same shape, trailing-dimension broadcast or scalar). */
    void binary(BinaryOp op, long a, long b, long out, long n, long bn) {
        if (n > 0) {
            binary.launch1d(stream, n, binaryBlock, op.ordinal(), a, b, out, n, bn);
        }
    }

    void affine(long x, long out, long n, float alpha, float beta) {
        if (n > 0) {
            affine.launch1d(stream, n, affineBlock, x, out, n, alpha, beta);
        }
    }

    void axpby(long a, long b, long out, long n, float alpha, float beta) {
        if (n > 0) {
            axpby.launch1d(stream, n, axpbyBlock, a, b, out, n, alpha, beta);
        }
    }

    /** Fills n 32-bit elements with the bit pattern {@code bits}. */
    void fill32(long out, long n, int bits) {
        if (n > 0) {
            fillB32.launch1d(stream, n, fillBlock, out, n, bits);
        }
    }

    /** Fills n 16-bit elements with the low 16 bits of {@code bits}. */
    void fill16(long out, long n, short bits) {
        if (n > 0) {
            fillB16.launch1d(stream, n, fillBlock, out, n, bits & 0xFFFF);
        }
    }

    /** True for the conversions {@link #convert} supports: f32 <-> bf16 and f32 <-> i32. */
    static boolean converts(DType from, DType to) {
        return from != null && to != null && from != to && (from == DType.F32 || to == DType.F32);
    }

    /**
     * Converts n elements: f32 -> bf16 rounds to nearest even (NaN stays NaN, as facm.tensor.Bf16), f32 -> i32
     * truncates like Java's cast, bf16 -> f32 and i32 -> f32 are exact or round to nearest even.
     */
    void convert(DType from, DType to, long x, long out, long n) {
        if (!converts(from, to)) {
            throw new IllegalArgumentException("no conversion kernel " + from + " -> " + to);
        }
        Kernel k = from == DType.F32 ? (to == DType.BF16 ? f32ToBf16 : f32ToI32)
                : from == DType.BF16 ? bf16ToF32 : i32ToF32;
        if (n > 0) {
            k.launch1d(stream, n, convertBlock, x, out, n);
        }
    }
}
