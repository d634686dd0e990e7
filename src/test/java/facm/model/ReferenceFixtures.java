package facm.model;

import facm.checkpoint.SafetensorsReader;
import facm.tensor.Backend;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The fixtures made by the independent PyTorch reference (tools/reference/make_fixtures.py, run on the GPU host; see
 * tools/reference/README.md), read from the test resources. They are copied to a temporary folder first so the tests
 * also run from the tests jar on a GPU host.
 */
final class ReferenceFixtures {
    private static Path dir;

    private ReferenceFixtures() {
    }

    static synchronized Path path(String name) {
        try {
            if (dir == null) {
                dir = Files.createTempDirectory("facm-fixtures");
                dir.toFile().deleteOnExit();
            }
            Path p = dir.resolve(name);
            if (!Files.exists(p)) {
                try (InputStream in = ReferenceFixtures.class.getResourceAsStream("/fixtures/" + name)) {
                    if (in == null) {
                        throw new IllegalStateException("test resource /fixtures/" + name + " is missing");
                    }
                    Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
                }
                p.toFile().deleteOnExit();
            }
            return p;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static SafetensorsReader open(String name) {
        try {
            return SafetensorsReader.open(path(name));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static ModelConfig config(SafetensorsReader r) {
        return ModelConfig.fromJson(r.metadata().get("config"));
    }

    /** The model tensors stored in a fixture (it also holds inputs and outputs, which are skipped). */
    static ModelWeights weightsFrom(SafetensorsReader r, ModelConfig c, Backend be) {
        ModelWeights w = new ModelWeights(c, be);
        for (ParameterTable.Entry e : w.table().entries()) {
            w.set(e.key(), r.readFloats(e.key()));
        }
        return w;
    }

    /** max |got − ref| / max |ref|, the measure the reference's README states its tolerances in. */
    static double relMaxError(float[] got, float[] ref) {
        if (got.length != ref.length) {
            throw new AssertionError("length " + got.length + " vs reference " + ref.length);
        }
        double err = 0;
        double scale = 0;
        for (int i = 0; i < ref.length; i++) {
            if (!Float.isFinite(got[i])) {
                return Double.POSITIVE_INFINITY;
            }
            err = Math.max(err, Math.abs((double) got[i] - ref[i]));
            scale = Math.max(scale, Math.abs(ref[i]));
        }
        return err / scale;
    }
}
