package facm.cuda.blas;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * Hand-written FFM downcalls into libcublasLt, one per C entry point we use, each with a wrapper that checks the
 * returned cublasStatus_t and names the call in the error.
 *
 * <p>Calling convention: opaque handles (cublasLtHandle_t, descriptors, layouts, preferences), device pointers and the
 * stream are declared {@code JAVA_LONG}, which the LP64 C ABI (Linux x86-64 and aarch64) passes exactly like a
 * pointer; this spares a MemorySegment wrapper per argument per call. Host pointers into our own native memory
 * (out-parameters, attribute values, alpha/beta, the algo struct) stay {@code ADDRESS} so FFM checks their liveness.
 * C enums are {@code int}; {@code size_t}, {@code uint64_t} and {@code int64_t} are {@code JAVA_LONG}.
 */
final class CublasLtFunctions {
    final NativeLibrary library;
    private final MethodHandle create;
    private final MethodHandle destroy;
    private final MethodHandle getVersion;
    private final MethodHandle descCreate;
    private final MethodHandle descDestroy;
    private final MethodHandle descSetAttribute;
    private final MethodHandle layoutCreate;
    private final MethodHandle layoutDestroy;
    private final MethodHandle layoutSetAttribute;
    private final MethodHandle preferenceCreate;
    private final MethodHandle preferenceDestroy;
    private final MethodHandle preferenceSetAttribute;
    private final MethodHandle algoGetHeuristic;
    private final MethodHandle matmul;

    CublasLtFunctions(NativeLibrary library) {
        this.library = library;
        FunctionDescriptor statusOfHandle = FunctionDescriptor.of(JAVA_INT, JAVA_LONG);
        FunctionDescriptor statusOfOut = FunctionDescriptor.of(JAVA_INT, ADDRESS);
        FunctionDescriptor setAttribute = FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG);
        create = bind("cublasLtCreate", statusOfOut);
        destroy = bind("cublasLtDestroy", statusOfHandle);
        getVersion = bind("cublasLtGetVersion", FunctionDescriptor.of(JAVA_LONG));
        descCreate = bind("cublasLtMatmulDescCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        descDestroy = bind("cublasLtMatmulDescDestroy", statusOfHandle);
        descSetAttribute = bind("cublasLtMatmulDescSetAttribute", setAttribute);
        layoutCreate = bind("cublasLtMatrixLayoutCreate",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
        layoutDestroy = bind("cublasLtMatrixLayoutDestroy", statusOfHandle);
        layoutSetAttribute = bind("cublasLtMatrixLayoutSetAttribute", setAttribute);
        preferenceCreate = bind("cublasLtMatmulPreferenceCreate", statusOfOut);
        preferenceDestroy = bind("cublasLtMatmulPreferenceDestroy", statusOfHandle);
        preferenceSetAttribute = bind("cublasLtMatmulPreferenceSetAttribute", setAttribute);
        // (handle, opDesc, Adesc, Bdesc, Cdesc, Ddesc, preference, requestedAlgoCount, results[], returnAlgoCount*)
        algoGetHeuristic = bind("cublasLtMatmulAlgoGetHeuristic", FunctionDescriptor.of(JAVA_INT,
                JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS,
                ADDRESS));
        // (handle, opDesc, alpha*, A, Adesc, B, Bdesc, beta*, C, Cdesc, D, Ddesc, algo*, workspace, wsBytes, stream)
        matmul = bind("cublasLtMatmul", FunctionDescriptor.of(JAVA_INT,
                JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    }

    private MethodHandle bind(String symbol, FunctionDescriptor descriptor) {
        return Linker.nativeLinker().downcallHandle(library.symbol(symbol), descriptor);
    }

    /** cublasLtGetVersion: major*10000 + minor*100 + patch, e.g. 130100. */
    long version() {
        try {
            return (long) getVersion.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtGetVersion");
        }
    }

    /** cublasLtCreate; {@code out} is 8 bytes of scratch for the returned handle. */
    long createHandle(MemorySegment out) {
        int status;
        try {
            status = (int) create.invokeExact(out);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtCreate");
        }
        check(status, "cublasLtCreate", "a cuBLASLt handle (is a CUDA context current on this thread?)");
        return out.get(JAVA_LONG, 0);
    }

    /** cublasLtDestroy; returns the status so that close() can go on releasing the rest. */
    int destroyHandle(long handle) {
        try {
            return (int) destroy.invokeExact(handle);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtDestroy");
        }
    }

    long createMatmulDesc(MemorySegment out, int computeType, int scaleType, String context) {
        int status;
        try {
            status = (int) descCreate.invokeExact(out, computeType, scaleType);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulDescCreate");
        }
        check(status, "cublasLtMatmulDescCreate", context);
        return out.get(JAVA_LONG, 0);
    }

    int destroyMatmulDesc(long desc) {
        try {
            return (int) descDestroy.invokeExact(desc);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulDescDestroy");
        }
    }

    /** Sets an int32_t-valued matmul descriptor attribute; {@code scratch} holds the value during the call. */
    void setMatmulDescInt(long desc, int attribute, String attributeName, int value, MemorySegment scratch,
                          String context) {
        scratch.set(JAVA_INT, 0, value);
        int status;
        try {
            status = (int) descSetAttribute.invokeExact(desc, attribute, scratch, 4L);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulDescSetAttribute");
        }
        check(status, "cublasLtMatmulDescSetAttribute(" + attributeName + ")", context);
    }

    /** Sets a 64-bit (pointer or int64_t) matmul descriptor attribute; {@code scratch} holds the value. */
    void setMatmulDescLong(long desc, int attribute, String attributeName, long value, MemorySegment scratch,
                           String context) {
        scratch.set(JAVA_LONG, 0, value);
        int status;
        try {
            status = (int) descSetAttribute.invokeExact(desc, attribute, scratch, 8L);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulDescSetAttribute");
        }
        check(status, "cublasLtMatmulDescSetAttribute(" + attributeName + ")", context);
    }

    long createLayout(MemorySegment out, int dataType, long rows, long cols, long ld, String context) {
        int status;
        try {
            status = (int) layoutCreate.invokeExact(out, dataType, rows, cols, ld);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatrixLayoutCreate");
        }
        check(status, "cublasLtMatrixLayoutCreate", context);
        return out.get(JAVA_LONG, 0);
    }

    int destroyLayout(long layout) {
        try {
            return (int) layoutDestroy.invokeExact(layout);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatrixLayoutDestroy");
        }
    }

    /** Sets a layout attribute of {@code bytes} (4 or 8) bytes, taken from {@code scratch}. */
    void setLayoutAttribute(long layout, int attribute, String attributeName, MemorySegment scratch, long bytes,
                            String context) {
        int status;
        try {
            status = (int) layoutSetAttribute.invokeExact(layout, attribute, scratch, bytes);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatrixLayoutSetAttribute");
        }
        check(status, "cublasLtMatrixLayoutSetAttribute(" + attributeName + ")", context);
    }

    long createPreference(MemorySegment out, String context) {
        int status;
        try {
            status = (int) preferenceCreate.invokeExact(out);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulPreferenceCreate");
        }
        check(status, "cublasLtMatmulPreferenceCreate", context);
        return out.get(JAVA_LONG, 0);
    }

    int destroyPreference(long preference) {
        try {
            return (int) preferenceDestroy.invokeExact(preference);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulPreferenceDestroy");
        }
    }

    /** Sets a preference attribute of {@code bytes} (4 or 8) bytes, taken from {@code scratch}. */
    void setPreferenceAttribute(long preference, int attribute, String attributeName, MemorySegment scratch,
                                long bytes, String context) {
        int status;
        try {
            status = (int) preferenceSetAttribute.invokeExact(preference, attribute, scratch, bytes);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulPreferenceSetAttribute");
        }
        check(status, "cublasLtMatmulPreferenceSetAttribute(" + attributeName + ")", context);
    }

    /** cublasLtMatmulAlgoGetHeuristic; returns how many results were written into {@code results}. */
    int algoGetHeuristic(long handle, long desc, long layoutA, long layoutB, long layoutC, long layoutD,
                         long preference, int requested, MemorySegment results, MemorySegment countOut,
                         String context) {
        int status;
        try {
            status = (int) algoGetHeuristic.invokeExact(handle, desc, layoutA, layoutB, layoutC, layoutD, preference,
                    requested, results, countOut);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmulAlgoGetHeuristic");
        }
        check(status, "cublasLtMatmulAlgoGetHeuristic", context);
        return countOut.get(JAVA_INT, 0);
    }

    /** cublasLtMatmul; returns the raw status so the hot path builds no message unless it fails. */
    int matmul(long handle, long desc, MemorySegment alpha, long a, long layoutA, long b, long layoutB,
               MemorySegment beta, long c, long layoutC, long d, long layoutD, MemorySegment algo, long workspace,
               long workspaceBytes, long stream) {
        try {
            return (int) matmul.invokeExact(handle, desc, alpha, a, layoutA, b, layoutB, beta, c, layoutC, d, layoutD,
                    algo, workspace, workspaceBytes, stream);
        } catch (Throwable t) {
            throw rethrow(t, "cublasLtMatmul");
        }
    }

    static void check(int status, String call, String context) {
        if (status != CublasLtAbi.CUBLAS_STATUS_SUCCESS) {
            throw new CublasException(call, status, context);
        }
    }

    /** invokeExact declares Throwable; unchecked ones pass through, anything else is wrapped with the call. */
    private static RuntimeException rethrow(Throwable t, String call) {
        if (t instanceof RuntimeException runtime) {
            return runtime;
        }
        if (t instanceof Error error) {
            throw error;
        }
        return new IllegalStateException("FFM downcall " + call + " failed", t);
    }
}
