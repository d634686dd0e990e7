package facm.backend.cuda;

import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Objects;

/**
 * The argument checks of the CUDA network ops. They state the same rules, with the same messages, as the CPU
 * reference's checks (facm.backend.cpu.CpuNetworkOps), so a call that fails on one backend fails the same way on the
 * other; the two copies are candidates for one shared checker in facm.tensor.
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

    /** t as an open I32 tensor of this backend. */
    CudaTensor i32(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, DType.I32);
        return c;
    }

    static void requireRank(String op, String role, Tensor t, int rank) {
        if (t.rank() != rank) {
            throw new ShapeException(op + ": " + role + " should have rank " + rank + ", got " + t.describe());
        }
    }

    /** Fails if {@code written} shares storage with any of the (possibly null) {@code others}. */
    static void requireNoSharing(String op, CudaTensor written, CudaTensor... others) {
        for (CudaTensor other : others) {
            if (other != null && written.sharesStorageWith(other)) {
                throw new ShapeException(op + ": " + written.describe() + " must not share storage with "
                        + other.describe());
            }
        }
    }

    static void requirePatch(String op, Tensor image, int patch, int h, int w) {
        if (patch < 1 || h % patch != 0 || w % patch != 0) {
            throw new ShapeException(op + ": patch " + patch + " must be >= 1 and divide the height and width of "
                    + image.describe());
        }
    }

    /** mod must be [B, K·D] and every chunk index in [0, K). */
    static void requireChunks(String op, Tensor mod, int batch, int d, String[] names, int... chunks) {
        if (d == 0 || mod.rank() != 2 || mod.dim(0) != batch || mod.dim(1) == 0 || mod.dim(1) % d != 0) {
            throw new ShapeException(op + ": mod " + mod.describe() + " should be [B, K·D] with B = " + batch
                    + ", D = " + d);
        }
        int count = mod.dim(1) / d;
        for (int i = 0; i < chunks.length; i++) {
            if (chunks[i] < 0 || chunks[i] >= count) {
                throw new ShapeException(op + ": " + names[i] + " " + chunks[i] + " is outside the " + count
                        + " chunks of mod " + mod.describe());
            }
        }
    }

    static void requireEps(String op, float eps) {
        if (!(eps >= 0) || Float.isInfinite(eps)) {
            throw new IllegalArgumentException(op + ": eps must be finite and >= 0, got " + eps);
        }
    }

    static String describeOrNull(Tensor t) {
        return t == null ? "null" : t.describe();
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
