package facm.checkpoint;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** Copies test resources to real files (the readers memory-map files; resources may sit inside a jar). */
final class CheckpointTestFiles {
    private CheckpointTestFiles() {
    }

    static Path copyResource(String name, Path dir) throws IOException {
        Path out = dir.resolve(name);
        try (InputStream in = CheckpointTestFiles.class.getResourceAsStream("/checkpoint/" + name)) {
            if (in == null) {
                throw new IOException("test resource /checkpoint/" + name + " is missing; run "
                        + "tools/reference/make_fake_pt.py");
            }
            Files.copy(in, out, StandardCopyOption.REPLACE_EXISTING);
        }
        return out;
    }
}
