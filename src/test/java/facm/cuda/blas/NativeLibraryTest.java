package facm.cuda.blas;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Library loading without a GPU: what is tried, in which order, and what the error says. */
class NativeLibraryTest {

    @Test
    void missingLibraryErrorListsEveryNameAndPathOnOneLine(@TempDir Path dir) {
        List<String> names = List.of("libfacm-missing.so.13", "libfacm-missing.so.12");
        NativeLibraryNotFoundException e = assertThrows(NativeLibraryNotFoundException.class,
                () -> NativeLibrary.load("facm-missing", names, List.of(dir)));
        String m = e.getMessage();
        assertFalse(m.contains("\n"), m);
        assertTrue(m.startsWith("facm-missing library not found; tried "), m);
        assertTrue(m.contains("libfacm-missing.so.13 (dynamic linker)"), m);
        assertTrue(m.contains("libfacm-missing.so.12 (dynamic linker)"), m);
        assertTrue(m.contains(dir.resolve("libfacm-missing.so.13") + " (absent)"), m);
        assertTrue(m.contains(dir.resolve("libfacm-missing.so.12") + " (absent)"), m);
        // Newest major version first: .13 is tried by name and by path before .12.
        assertTrue(m.indexOf(dir.resolve("libfacm-missing.so.13").toString())
                < m.indexOf("libfacm-missing.so.12 (dynamic linker)"), m);
    }

    @Test
    void loadsALibraryTheDynamicLinkerKnowsAndFindsItsSymbols() {
        NativeLibrary libc = NativeLibrary.load("libc", List.of("libfacm-missing.so.1", "libc.so.6"), List.of());
        assertEquals("libc.so.6", libc.name());
        assertTrue(libc.description().contains("libc"), libc.description());
        libc.symbol("strlen");
        NativeLibraryNotFoundException e = assertThrows(NativeLibraryNotFoundException.class,
                () -> libc.symbol("facm_no_such_symbol"));
        assertTrue(e.getMessage().contains("facm_no_such_symbol"), e.getMessage());
    }

    @Test
    void searchDirectoriesEndWithCudaInstallLocations() {
        List<Path> dirs = NativeLibrary.searchDirectories();
        assertTrue(dirs.containsAll(NativeLibrary.CUDA_LIBRARY_DIRECTORIES), dirs.toString());
        assertEquals(dirs.size(), dirs.stream().distinct().count());
    }

    /** On a machine without cuBLAS (our CPU build machines) opening must say what it looked for. */
    @Test
    void openWithoutCublasListsTheSonamesTried() {
        try (CublasLt lt = CublasLt.open()) {
            Assumptions.abort("cuBLASLt is installed here (" + lt + "); the missing-library message is not testable");
        } catch (NativeLibraryNotFoundException e) {
            String m = e.getMessage();
            assertFalse(m.contains("\n"), m);
            assertTrue(m.startsWith("cuBLASLt library not found; tried "), m);
            assertTrue(m.contains("libcublasLt.so.13 (dynamic linker)"), m);
            assertTrue(m.contains("libcublasLt.so.12 (dynamic linker)"), m);
            assertTrue(m.contains("/usr/local/cuda/lib64/libcublasLt.so.13"), m);
            assertTrue(m.contains("/usr/local/cuda/targets/x86_64-linux/lib/libcublasLt.so.12"), m);
        } catch (CublasException e) {
            Assumptions.abort("cuBLASLt is installed here but cannot create a handle: " + e.getMessage());
        }
    }
}
