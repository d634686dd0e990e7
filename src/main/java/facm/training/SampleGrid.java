package facm.training;

import facm.io.PngWriter;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.sampling.EulerSampler;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The periodic sample grid of a training run on images: Euler samples of the flow-matching velocity (no guidance)
 * from the same noise and labels every time, so grids of successive steps show the model's progress. Column j holds
 * class j when the classes fit in one row; otherwise labels cycle.
 */
final class SampleGrid {
    /** At most this many samples per grid (one network batch). */
    static final int MAX_SAMPLES = 32;
    /** Noise seed offset, so grids do not reuse the training noise stream. */
    private static final long NOISE_SEED_SALT = 0x5A3D1E6B9C47F201L;

    private SampleGrid() {
    }

    /** PNG grids need 1- or 3-channel images (latent models need a decoder, which this engine does not have). */
    static boolean supports(ModelConfig c) {
        return c.inChannels() == 1 || c.inChannels() == 3;
    }

    static int columns(ModelConfig c) {
        return c.numClasses() <= 16 ? c.numClasses() : 8;
    }

    static int count(ModelConfig c) {
        int cols = columns(c);
        return Math.max(1, MAX_SAMPLES / cols) * cols;
    }

    static void write(Path file, ModelWeights weights, GemmPrecision precision, int eulerSteps, long seed)
            throws IOException {
        ModelConfig c = weights.config();
        Backend be = weights.backend();
        int n = count(c);
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            labels[i] = i % c.numClasses();
        }
        LightningDiT net = new LightningDiT(weights).precision(precision);
        try (Tensor z = be.empty("grid_noise", DType.F32, n, c.inChannels(), c.inputSize(), c.inputSize());
             Tensor y = be.upload("grid_labels", labels, n)) {
            be.randomNormal(z, seed ^ NOISE_SEED_SALT, 0);
            try (Tensor x = EulerSampler.sample(net, z, y, EulerSampler.Options.plain(eulerSteps))) {
                PngWriter.writeGrid(file, be.download(x), n, c.inChannels(), c.inputSize(), c.inputSize(),
                        columns(c));
            }
        }
    }
}
