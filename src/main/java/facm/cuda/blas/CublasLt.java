package facm.cuda.blas;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import facm.cuda.Cuda;
import jcuda.driver.JCudaDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A cuBLASLt handle that runs row-major, strided-batched GEMMs ({@link RowMajorGemm}) on device memory.
 *
 * <p><b>Devices and threads.</b> Open one CublasLt per device, while that device's context is current
 * ({@code CudaDevice.makeCurrent()}), and call {@link #gemm} only with that context current. Public methods are
 * synchronized: calls from several threads are safe but serialized; the intended use is one thread at a time.
 *
 * <p><b>Performance.</b> The first GEMM of a shape creates a matmul descriptor, three layouts (C's serves as D, the
 * product being in place) and asks cublasLtMatmulAlgoGetHeuristic for the best algorithm within the workspace; all of
 * it is cached under the shape, the pointers' alignments (up to 256 bytes, which the heuristic must know) and the
 * workspace size. A repeated GEMM then allocates no native memory: alpha and beta go through a preallocated host
 * buffer (pointer mode host), and the call is one downcall to cublasLtMatmul. The cache is never evicted; a model has
 * a few dozen GEMM shapes. Because nothing is allocated on the device either, GEMMs can be captured in CUDA graphs
 * (alpha and beta are read at call time, so a captured GEMM keeps the values it was captured with).
 *
 * <p><b>Workspace.</b> The caller owns it (e.g. from the device arena); pass {@link #RECOMMENDED_WORKSPACE_BYTES}
 * bytes, 256-byte aligned, and do not use it concurrently on another stream.
 *
 * <p><b>Debugging.</b> With {@link Cuda#syncCheck()} on (tests), every GEMM is followed by a context synchronize and
 * an error check, so an asynchronous fault is reported at the GEMM that caused it.
 */
public final class CublasLt implements AutoCloseable {

    /** 32 MiB: NVIDIA's recommended cuBLAS workspace for Hopper (4 MiB is enough before sm_90). */
    public static final long RECOMMENDED_WORKSPACE_BYTES = 32L << 20;

    /** Sonames tried in order: CUDA 13's, then CUDA 12's (the API we use is the same). */
    public static final List<String> LIBRARY_NAMES = List.of("libcublasLt.so.13", "libcublasLt.so.12");

    private static CublasLtFunctions loadedFunctions;

    private final CublasLtFunctions f;
    private final Arena arena;
    private final long handle;
    private final MemorySegment alpha;
    private final MemorySegment beta;
    private final MemorySegment scratch;
    private final MemorySegment heuristic;
    private final Map<MatmulPlan.Key, MatmulPlan> plans = new HashMap<>();
    private boolean closed;

    private CublasLt(CublasLtFunctions f, Arena arena, long handle) {
        this.f = f;
        this.arena = arena;
        this.handle = handle;
        MemorySegment scalars = arena.allocate(8, 8);
        this.alpha = scalars.asSlice(0, 4);
        this.beta = scalars.asSlice(4, 4);
        this.scratch = arena.allocate(16, 8);
        this.heuristic = arena.allocate(CublasLtAbi.HEURISTIC_RESULT);
    }

    /**
     * Loads libcublasLt (once per process) and creates a handle for the device whose context is current.
     *
     * @throws NativeLibraryNotFoundException when no libcublasLt loads; the message lists every name and path tried
     * @throws CublasException when cublasLtCreate fails
     */
    public static CublasLt open() {
        return open(functions());
    }

    /** A handle over an explicitly loaded library (tests bind a host-memory stand-in this way). */
    static CublasLt open(NativeLibrary library) {
        return open(new CublasLtFunctions(library));
    }

    private static CublasLt open(CublasLtFunctions f) {
        Arena arena = Arena.ofShared();
        try {
            long handle = f.createHandle(arena.allocate(8, 8));
            return new CublasLt(f, arena, handle);
        } catch (RuntimeException | Error failure) {
            arena.close();
            throw failure;
        }
    }

    private static synchronized CublasLtFunctions functions() {
        if (loadedFunctions == null) {
            NativeLibrary library = NativeLibrary.load("cuBLASLt", LIBRARY_NAMES, NativeLibrary.searchDirectories());
            loadedFunctions = new CublasLtFunctions(library);
        }
        return loadedFunctions;
    }

    /** cublasLtGetVersion(): major*10000 + minor*100 + patch, e.g. 130100 for 13.1.0. */
    public int version() {
        return (int) f.version();
    }

    /** The file the library was loaded from (or the soname, where the dynamic linker's choice is not visible). */
    public String libraryPath() {
        return f.library.description();
    }

    /**
     * Enqueues {@code C = alpha * op(A)·op(B) + beta * C} on {@code stream}, for every matrix of the batch.
     *
     * @param stream         the CUstream (driver API handle, its native address), 0 for the legacy default stream
     * @param a              device address of A's first matrix, of dtype {@code g.kind().inputDType()}
     * @param b              device address of B's first matrix, same dtype as A
     * @param c              device address of C's first matrix, of dtype {@code g.kind().outputDType()}; read when
     *                       beta != 0, always overwritten
     * @param workspace      device scratch of {@code workspaceBytes} bytes (0 with 0 bytes: then only algorithms that
     *                       need none are considered, which is slower for large products)
     * @throws CublasException naming the cuBLAS call, the status and the GEMM when cuBLASLt refuses or fails
     */
    public synchronized void gemm(long stream, RowMajorGemm g, long a, long b, long c, long workspace,
                                  long workspaceBytes) {
        matmul(stream, g, a, b, c, 0L, workspace, workspaceBytes);
    }

    /**
     * As {@link #gemm}, plus a bias fused into the epilogue (CUBLASLT_EPILOGUE_BIAS):
     * {@code C[r, j] = alpha * (op(A)·op(B))[r, j] + beta * C[r, j] + bias[j]} for every row r of the row-major
     * result, the sum formed in fp32 and rounded once to C's type. {@code bias} holds n values of C's dtype
     * ({@code g.kind().outputDType()}, cuBLASLt's default bias type), densely packed; batch must be 1.
     *
     * @throws CublasException when cuBLASLt has no algorithm with this epilogue or the call fails
     */
    public synchronized void gemmBias(long stream, RowMajorGemm g, long a, long b, long c, long bias,
                                      long workspace, long workspaceBytes) {
        if (bias == 0) {
            throw new IllegalArgumentException("gemmBias: the bias is a null device pointer, for " + g.describe());
        }
        if (g.batch() != 1) {
            throw new IllegalArgumentException("gemmBias takes one matrix (batch 1), for " + g.describe());
        }
        requireOperand("bias", bias, g.kind().outputElementBytes(), g);
        matmul(stream, g, a, b, c, bias, workspace, workspaceBytes);
    }

    private void matmul(long stream, RowMajorGemm g, long a, long b, long c, long bias, long workspace,
                        long workspaceBytes) {
        if (closed) {
            throw new IllegalStateException("cuBLASLt handle is closed; gemm " + g.describe());
        }
        requireOperand("A", a, g.kind().inputElementBytes(), g);
        requireOperand("B", b, g.kind().inputElementBytes(), g);
        requireOperand("C", c, g.kind().outputElementBytes(), g);
        if (workspaceBytes < 0 || (workspaceBytes > 0 && workspace == 0)) {
            throw new IllegalArgumentException("gemm workspace of " + workspaceBytes + " bytes at address 0x"
                    + Long.toHexString(workspace) + " is not usable, for " + g.describe());
        }
        MatmulPlan.Key key = MatmulPlan.Key.of(g, a, b, c, bias, workspaceBytes);
        String what = bias == 0 ? g.describe() : g.describe() + " + bias epilogue";
        MatmulPlan plan = plans.get(key);
        if (plan == null) {
            plan = MatmulPlan.create(f, handle, key, bias, what, scratch, heuristic, arena);
            plans.put(key, plan);
        } else if (bias != 0) {
            MatmulPlan.setBias(f, plan.desc, bias, scratch, what); // the plan is shared by every layer of the shape
        }
        alpha.set(JAVA_FLOAT, 0, g.alpha());
        beta.set(JAVA_FLOAT, 0, g.beta());
        // Row-major swap (see MatmulPlan): cuBLAS's A is our b, its B is our a; D is C.
        int status = f.matmul(handle, plan.desc, alpha, b, plan.layoutOfB, a, plan.layoutOfA, beta, c,
                plan.layoutOfC, c, plan.layoutOfC, plan.algo, workspace, workspaceBytes, stream);
        if (status != CublasLtAbi.CUBLAS_STATUS_SUCCESS) {
            throw new CublasException("cublasLtMatmul", status, what + " (algorithm needs "
                    + plan.workspaceNeeded + " of " + workspaceBytes + " workspace bytes, stream 0x"
                    + Long.toHexString(stream) + ")");
        }
        if (Cuda.syncCheck()) {
            // Debug mode (tests): report an asynchronous fault at the GEMM that caused it. Only the raw stream
            // address is known here, so the whole context is synchronized.
            Cuda.check(JCudaDriver.cuCtxSynchronize(), "cuCtxSynchronize after cublasLtMatmul for " + what);
        }
    }

    /** How many GEMM plans (shape + alignment + workspace combinations) are cached. */
    public synchronized int planCount() {
        return plans.size();
    }

    /**
     * Destroys the cached plans and the handle. Call it with the device's context current, after the GEMMs that were
     * enqueued have finished (synchronize the stream first). Idempotent.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        int firstFailure = CublasLtAbi.CUBLAS_STATUS_SUCCESS;
        String failedCall = null;
        try {
            for (MatmulPlan plan : plans.values()) {
                int status = plan.destroy(f);
                if (status != CublasLtAbi.CUBLAS_STATUS_SUCCESS && failedCall == null) {
                    firstFailure = status;
                    failedCall = "cublasLtMatmulDescDestroy/cublasLtMatrixLayoutDestroy";
                }
            }
            plans.clear();
            int status = f.destroyHandle(handle);
            if (status != CublasLtAbi.CUBLAS_STATUS_SUCCESS && failedCall == null) {
                firstFailure = status;
                failedCall = "cublasLtDestroy";
            }
        } finally {
            arena.close();
        }
        if (failedCall != null) {
            throw new CublasException(failedCall, firstFailure, "closing the cuBLASLt handle");
        }
    }

    @Override
    public String toString() {
        return "cuBLASLt " + version() + " from " + libraryPath();
    }

    private static void requireOperand(String name, long address, int elementBytes, RowMajorGemm g) {
        if (address == 0) {
            throw new IllegalArgumentException("gemm operand " + name + " is a null device pointer, for "
                    + g.describe());
        }
        if (address % elementBytes != 0) {
            throw new IllegalArgumentException("gemm operand " + name + " at 0x" + Long.toHexString(address)
                    + " is not aligned to its " + elementBytes + "-byte elements, for " + g.describe());
        }
    }
}
