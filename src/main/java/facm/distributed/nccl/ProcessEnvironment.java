package facm.distributed.nccl;

import facm.distributed.DistributedException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * libc's {@code setenv} for this process: Java cannot change its own environment, but NCCL reads its settings
 * ({@code NCCL_NVLS_ENABLE}) with getenv when a communicator is created, so they must be in the C environment.
 */
final class ProcessEnvironment {
    private ProcessEnvironment() {
    }

    /** setenv(name, value, overwrite = 1). */
    static void set(String name, String value) {
        Linker linker = Linker.nativeLinker();
        MemorySegment sym = linker.defaultLookup().find("setenv")
                .orElseThrow(() -> new DistributedException("libc has no setenv (needed to set " + name + ")"));
        MethodHandle setenv = linker.downcallHandle(sym, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
        try (Arena a = Arena.ofConfined()) {
            int rc = (int) setenv.invokeExact(a.allocateFrom(name), a.allocateFrom(value), 1);
            if (rc != 0) {
                throw new DistributedException("setenv(" + name + "=" + value + ") failed with " + rc);
            }
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new DistributedException("setenv(" + name + "=" + value + ") failed: " + t, t);
        }
    }
}
