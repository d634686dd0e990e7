package facm.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The kernel driver's version string (e.g. "580.95.05"): from NVML ({@code nvmlSystemGetDriverVersion}, called through
 * FFM on libnvidia-ml.so.1, which every driver installs), else from /proc/driver/nvidia/version, else "unknown".
 */
public final class NvidiaDriver {
    private NvidiaDriver() {
    }

    public static String version() {
        String v = fromNvml();
        if (v == null) {
            v = fromProc();
        }
        return v == null ? "unknown" : v;
    }

    private static String fromNvml() {
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup nvml = SymbolLookup.libraryLookup("libnvidia-ml.so.1", arena);
            Linker linker = Linker.nativeLinker();
            MethodHandle init = linker.downcallHandle(nvml.find("nvmlInit_v2").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT));
            MethodHandle get = linker.downcallHandle(nvml.find("nvmlSystemGetDriverVersion").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT));
            MethodHandle shutdown = linker.downcallHandle(nvml.find("nvmlShutdown").orElseThrow(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT));
            if ((int) init.invokeExact() != 0) {
                return null;
            }
            try {
                MemorySegment buf = arena.allocate(96);
                if ((int) get.invokeExact(buf, 96) != 0) {
                    return null;
                }
                return buf.getString(0);
            } finally {
                int ignored = (int) shutdown.invokeExact();
            }
        } catch (Throwable t) {
            return null;
        }
    }

    private static String fromProc() {
        try {
            Path p = Path.of("/proc/driver/nvidia/version");
            if (Files.isReadable(p)) {
                Matcher m = Pattern.compile("Kernel Module\\s+([0-9.]+)").matcher(Files.readString(p));
                if (m.find()) {
                    return m.group(1);
                }
            }
        } catch (java.io.IOException e) {
            return null;
        }
        return null;
    }
}
