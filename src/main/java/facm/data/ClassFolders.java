package facm.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * The file layout of an image folder, {@code root/<class>/*.png|jpg|jpeg}, found by names only. Kept apart from
 * {@link ImageFolder} so that {@link Datasets} can recognise the layout without loading java.desktop classes.
 */
final class ClassFolders {
    private static final List<String> EXTENSIONS = List.of(".png", ".jpg", ".jpeg");

    private ClassFolders() {
    }

    /** True when some class folder of {@code root} holds an image file. */
    static boolean present(Path root) {
        for (Path dir : classFolders(root)) {
            if (!imagesIn(dir).isEmpty()) {
                return true;
            }
        }
        return false;
    }

    /** Non-hidden sub-folders of {@code root}, sorted by name. */
    static List<Path> classFolders(Path root) {
        try (Stream<Path> entries = Files.list(root)) {
            return entries.filter(p -> !hidden(p) && Files.isDirectory(p)).sorted().toList();
        } catch (IOException e) {
            throw new DataException("cannot list " + root + ": " + e, e);
        }
    }

    /** Non-hidden .png/.jpg/.jpeg files of {@code dir} (any case), sorted by name. */
    static List<Path> imagesIn(Path dir) {
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.filter(p -> !hidden(p) && isImageName(p) && Files.isRegularFile(p)).sorted().toList();
        } catch (IOException e) {
            throw new DataException("cannot list " + dir + ": " + e, e);
        }
    }

    private static boolean isImageName(Path p) {
        String lower = p.getFileName().toString().toLowerCase(Locale.ROOT);
        return EXTENSIONS.stream().anyMatch(lower::endsWith);
    }

    private static boolean hidden(Path p) {
        return p.getFileName().toString().startsWith(".");
    }
}
