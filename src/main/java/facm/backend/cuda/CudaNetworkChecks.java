package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Objects;

/**
 * The CUDA side of the network ops' argument checks: converting each tensor to an open {@link CudaTensor} of the
 * right dtype, and the alignment the kernels need. The backend-independent rules live in
 * {@link facm.tensor.NetworkChecks}, shared with the CPU reference.
 */
final class CudaNetworkChecks {
    private final CudaBackend backend;

    CudaNetworkChecks(CudaBackend backend) {
        this.backend = Objects.requireNonNull(backend, "CudaNetworkOps: backend is null");
    }

    /** t as an open F32 tensor of this backend; {@code role} names the argument in errors. */
    CudaTensor f32(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, DType.F32);
        return c;
    }

    /** t as an open F32 or BF16 tensor of this backend (an activation of the bf16-activation forms). */
    CudaTensor floating(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, DType.F32, DType.BF16);
        return c;
    }

    /** t as an open I32 tensor of this backend. */
    CudaTensor i32(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, DType.I32);
        return c;
    }

    static void requirePatch(String op, Tensor image, int patch, int h, int w) {
        if (patch < 1 || h % patch != 0 || w % patch != 0) {
            throw new ShapeException(op + ": patch " + patch + " must be >= 1 and divide the height and width of "
                    + image.describe());
        }
    }

    /** Device address of a possibly absent tensor: 0 (the kernels' nullptr) for null. */
    static long addressOrNull(CudaTensor t) {
        return t == null ? 0L : t.address();
    }

    /** True when every given (non-null) tensor starts on a 16-byte boundary, so float4 accesses are legal. */
    static boolean aligned16(CudaTensor... ts) {
        return aligned(16, ts);
    }

    /** True when every given (non-null) tensor's address is a multiple of {@code bytes} (a power of two). */
    static boolean aligned(int bytes, CudaTensor... ts) {
        for (CudaTensor t : ts) {
            if (t != null && (t.address() & (bytes - 1L)) != 0) {
                return false;
            }
        }
        return true;
    }
}
