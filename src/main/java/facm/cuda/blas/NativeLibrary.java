package facm.cuda.blas;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Set;

/**
 * A shared library loaded for the life of the process, found by trying sonames in order of preference.
 *
 * <p>For each name (e.g. {@code libcublasLt.so.13}, then {@code libcublasLt.so.12}) the dynamic linker is asked first
 * (it searches LD_LIBRARY_PATH, the ld.so cache and the default directories), then each directory of
 * {@link #searchDirectories()} is tried with the full path. The first name that loads wins, so a newer major version
 * anywhere beats an older one. Libraries are loaded into the global arena and never unloaded: unloading CUDA libraries
 * while their threads and static state may still be alive is not safe.
 *
 * @param description where the library came from: its resolved file path when known, else the name given to the
 *                    dynamic linker
 */
public record NativeLibrary(String name, String description, SymbolLookup symbols) {

    /** CUDA's usual install locations, searched after the dynamic linker and LD_LIBRARY_PATH. */
    static final List<Path> CUDA_LIBRARY_DIRECTORIES = List.of(
            Path.of("/usr/local/cuda/lib64"),
            Path.of("/usr/local/cuda/targets/x86_64-linux/lib"));

    /**
     * Loads the first of {@code names} that can be loaded, asking the dynamic linker and then {@code directories}.
     *
     * @param what human name for error messages, e.g. "cuBLASLt"
     * @throws NativeLibraryNotFoundException listing every name and path tried, on one line
     */
    public static NativeLibrary load(String what, List<String> names, List<Path> directories) {
        if (names.isEmpty()) {
            throw new IllegalArgumentException("no library names given for " + what);
        }
        List<String> tried = new ArrayList<>();
        String firstFailure = null;
        for (String name : names) {
            try {
                SymbolLookup lookup = SymbolLookup.libraryLookup(name, Arena.global());
                return new NativeLibrary(name, resolvedPath(name), lookup);
            } catch (IllegalArgumentException notFound) {
                tried.add(name + " (dynamic linker)");
                if (firstFailure == null) {
                    firstFailure = notFound.getMessage();
                }
            }
            for (Path dir : directories) {
                Path candidate = dir.resolve(name);
                if (!Files.exists(candidate)) {
                    tried.add(candidate + " (absent)");
                    continue;
                }
                try {
                    SymbolLookup lookup = SymbolLookup.libraryLookup(candidate, Arena.global());
                    return new NativeLibrary(name, candidate.toString(), lookup);
                } catch (IllegalArgumentException loadFailed) {
                    // The file exists but does not load (wrong architecture, missing dependency): say so.
                    tried.add(candidate + " (present but failed to load: " + oneLine(loadFailed.getMessage()) + ")");
                }
            }
        }
        throw new NativeLibraryNotFoundException(what + " library not found; tried " + String.join(", ", tried)
                + (firstFailure == null ? "" : "; dynamic linker said: " + oneLine(firstFailure)));
    }

    /** LD_LIBRARY_PATH's entries, then {@link #CUDA_LIBRARY_DIRECTORIES}, without duplicates. */
    public static List<Path> searchDirectories() {
        Set<Path> dirs = new LinkedHashSet<>();
        String ldPath = System.getenv("LD_LIBRARY_PATH");
        if (ldPath != null) {
            for (String entry : ldPath.split(":")) {
                if (!entry.isBlank()) {
                    dirs.add(Path.of(entry.trim()));
                }
            }
        }
        dirs.addAll(CUDA_LIBRARY_DIRECTORIES);
        return List.copyOf(dirs);
    }

    /** The address of {@code symbol}, or an error naming the library and the symbol. */
    public MemorySegment symbol(String symbol) {
        try {
            return symbols.findOrThrow(symbol);
        } catch (NoSuchElementException missing) {
            throw new NativeLibraryNotFoundException(
                    "symbol " + symbol + " not found in " + description + " (too old a version?)");
        }
    }

    /**
     * Where the dynamic linker found {@code name}: the mapping in /proc/self/maps whose file name starts with it. Falls
     * back to the bare name where /proc is not readable.
     */
    private static String resolvedPath(String name) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
                int slash = line.indexOf('/');
                if (slash >= 0) {
                    String path = line.substring(slash);
                    String fileName = Path.of(path).getFileName().toString();
                    if (fileName.startsWith(name)) {
                        return path;
                    }
                }
            }
        } catch (IOException | RuntimeException unreadable) {
            // Not Linux, or /proc hidden: the name is still a useful description.
        }
        return name + " (via dynamic linker)";
    }

    private static String oneLine(String message) {
        return message == null ? "" : message.replace('\n', ' ').trim();
    }
}
