package facm.training;

import facm.io.PngWriter;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.sampling.ConsistencySampler;
import facm.sampling.EulerSampler;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The periodic sample grids of a training run on images, from the same noise and labels every time, so grids of
 * successive steps show the model's progress. Column j holds class j when the classes fit in one row; otherwise labels
 * cycle. A flow-matching run ({@code fm}) gets Euler samples of its velocity (no guidance); a consistency-model run
 * ({@code facm}, {@code scm}, {@code meanflow}) gets the few-step sampler of facm-spec.md §7 at NFE 1 and 2 (an
 * auxiliary-time model is evaluated with r = 1, the CM branch of §3.7, by {@link ConsistencySampler}).
 */
final class SampleGrid {
    /** At most this many samples per grid (one network batch). */
    static final int MAX_SAMPLES = 32;
    /** The step counts of a consistency-model run's grids. */
    static final int[] CONSISTENCY_NFES = {1, 2};
    /** Noise seed offset, so grids do not reuse the training noise stream. */
    private static final long NOISE_SEED_SALT = 0x5A3D1E6B9C47F201L;

    private SampleGrid() {
    }

    /** PNG grids need 1- or 3-channel images (latent models need a decoder, which this engine does not have). */
    static boolean supports(ModelConfig c) {
        return c.inChannels() == 1 || c.inChannels() == 3;
    }

    /** Whether runs of {@code objective} sample with the consistency sampler (every objective except "fm"). */
    static boolean usesConsistencySampler(String objective) {
        return !"fm".equals(objective);
    }

    static int columns(ModelConfig c) {
        return c.numClasses() <= 16 ? c.numClasses() : 8;
    }

    static int count(ModelConfig c) {
        int cols = columns(c);
        return Math.max(1, MAX_SAMPLES / cols) * cols;
    }

    /** The grid's labels: class i mod numClasses for sample i. */
    static int[] labels(ModelConfig c) {
        int[] labels = new int[count(c)];
        for (int i = 0; i < labels.length; i++) {
            labels[i] = i % c.numClasses();
        }
        return labels;
    }

    /** The grid's starting noise and the seed of any later noise (Philox counters from numel on, so no overlap). */
    static long noiseSeed(long runSeed) {
        return runSeed ^ NOISE_SEED_SALT;
    }

    /** Euler samples of the flow-matching velocity, {@code [count, C, H, W]} values. */
    static float[] eulerSamples(ModelWeights weights, GemmPrecision precision, int eulerSteps, long seed) {
        return sample(weights, precision, seed, (net, z, y) ->
                EulerSampler.sample(net, z, y, EulerSampler.Options.plain(eulerSteps)));
    }

    /** Consistency samples with {@code nfe} network evaluations, {@code [count, C, H, W]} values. */
    static float[] consistencySamples(ModelWeights weights, GemmPrecision precision, int nfe, long seed) {
        return sample(weights, precision, seed, (net, z, y) ->
                ConsistencySampler.sample(net, z, y, nfe, noiseSeed(seed)));
    }

    static void writeEuler(Path file, ModelWeights weights, GemmPrecision precision, int eulerSteps, long seed)
            throws IOException {
        writePng(file, weights.config(), eulerSamples(weights, precision, eulerSteps, seed));
    }

    static void writeConsistency(Path file, ModelWeights weights, GemmPrecision precision, int nfe, long seed)
            throws IOException {
        writePng(file, weights.config(), consistencySamples(weights, precision, nfe, seed));
    }

    private static void writePng(Path file, ModelConfig c, float[] samples) throws IOException {
        PngWriter.writeGrid(file, samples, count(c), c.inChannels(), c.inputSize(), c.inputSize(), columns(c));
    }

    @FunctionalInterface
    private interface Sampler {
        Tensor run(LightningDiT net, Tensor z, Tensor y);
    }

    private static float[] sample(ModelWeights weights, GemmPrecision precision, long seed, Sampler sampler) {
        ModelConfig c = weights.config();
        Backend be = weights.backend();
        int n = count(c);
        LightningDiT net = new LightningDiT(weights).precision(precision);
        try (Tensor z = be.empty("grid_noise", DType.F32, n, c.inChannels(), c.inputSize(), c.inputSize());
             Tensor y = be.upload("grid_labels", labels(c), n)) {
            be.randomNormal(z, noiseSeed(seed), 0);
            try (Tensor x = sampler.run(net, z, y)) {
                return be.download(x);
            }
        }
    }
}
