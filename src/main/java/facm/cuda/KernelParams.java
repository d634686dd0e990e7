package facm.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Reads a kernel's real parameter list from the driver ({@code cuFuncGetParamInfo}, CUDA 12.4+, called through FFM
 * because JCuda 12.6 has no binding for it), so a Java-side declaration that does not match the compiled kernel is
 * refused when the kernel is looked up instead of corrupting the launch.
 */
final class KernelParams {
    private static final int CUDA_SUCCESS = 0;
    private static final MethodHandle PARAM_INFO = lookup();

    private KernelParams() {
    }

    private static MethodHandle lookup() {
        try {
            SymbolLookup cuda = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
            Optional<MemorySegment> sym = cuda.find("cuFuncGetParamInfo");
            if (sym.isEmpty()) {
                return null;
            }
            return Linker.nativeLinker().downcallHandle(sym.get(), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                    ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.ADDRESS, ValueLayout.ADDRESS));
        } catch (IllegalArgumentException | IllegalCallerException e) {
            return null;
        }
    }

    /** Byte sizes of the kernel's parameters, or null when this driver cannot say. */
    static List<Long> sizes(long function) {
        if (PARAM_INFO == null) {
            return null;
        }
        List<Long> sizes = new ArrayList<>();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment offset = a.allocate(ValueLayout.JAVA_LONG);
            MemorySegment size = a.allocate(ValueLayout.JAVA_LONG);
            for (long i = 0; i < 256; i++) {
                int r = (int) PARAM_INFO.invokeExact(MemorySegment.ofAddress(function), i, offset, size);
                if (r != CUDA_SUCCESS) {
                    break;
                }
                sizes.add(size.get(ValueLayout.JAVA_LONG, 0));
            }
        } catch (Throwable t) {
            return null;
        }
        return sizes;
    }

    static long sizeOf(KernelArg k) {
        return switch (k) {
            case PTR, I64, F64 -> 8;
            case I32, F32 -> 4;
        };
    }

    /** Throws when the declared signature disagrees with the compiled kernel's parameters. */
    static void verify(String name, long function, KernelArg[] declared) {
        List<Long> actual = sizes(function);
        if (actual == null) {
            return;
        }
        boolean ok = actual.size() == declared.length;
        for (int i = 0; ok && i < declared.length; i++) {
            ok = actual.get(i) == sizeOf(declared[i]);
        }
        if (!ok) {
            throw new CudaException("kernel '" + name + "' was declared with " + java.util.Arrays.toString(declared)
                    + " but the compiled kernel takes " + actual.size() + " parameters of byte sizes " + actual);
        }
    }
}
