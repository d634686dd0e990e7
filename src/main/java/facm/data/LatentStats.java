package facm.data;

import facm.checkpoint.CheckpointTensor;
import facm.checkpoint.SafetensorsReader;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Per-channel latent statistics for x = (z − mean) / std (facm-spec.md §2.2), and where they came from. Loaded from a
 * safetensors file with {@code mean} and {@code std} of one value per channel (the official (1,C,1,1) layout), or
 * computed like VA-VAE's {@code latents_stats.pt}: over N,H,W of up to {@value #MAX_SAMPLES} un-flipped latents, with
 * the unbiased std. The values are checked: std positive, both finite.
 */
public record LatentStats(float[] mean, float[] std, String source) {
    static final int MAX_SAMPLES = 10_000;

    /** Reads sample {@code index} (raw, un-flipped, CHW) into {@code dst}. */
    interface RawLatents {
        void read(int index, float[] dst);
    }

    public LatentStats {
        if (mean.length != std.length) {
            throw new IllegalArgumentException("mean has " + mean.length + " channels, std " + std.length);
        }
        for (int c = 0; c < mean.length; c++) {
            if (!(std[c] > 0) || !Float.isFinite(std[c]) || !Float.isFinite(mean[c])) {
                throw new DataException("latent channel " + c + " has mean " + mean[c] + " and std " + std[c] + " ("
                        + source + "); std must be positive and both finite");
            }
        }
    }

    public int channels() {
        return mean.length;
    }

    static LatentStats load(Path file, int channels) {
        try (SafetensorsReader reader = SafetensorsReader.open(file)) {
            float[][] out = new float[2][];
            for (int k = 0; k < 2; k++) {
                String key = k == 0 ? "mean" : "std";
                if (!reader.contains(key)) {
                    throw new DataException(file + " has no tensor '" + key + "' (expected mean and std shaped (1,"
                            + channels + ",1,1); it has " + reader.names() + ")");
                }
                CheckpointTensor t = reader.tensor(key);
                if (!t.dtype().isFloating() || t.numel() != channels) {
                    throw new DataException(file + ": " + t.describe() + " does not hold one value per channel of "
                            + "latents with " + channels + " channels (expected (1," + channels + ",1,1))");
                }
                out[k] = t.toFloats();
            }
            return new LatentStats(out[0], out[1], "mean/std from " + file);
        } catch (IOException | RuntimeException e) {
            if (e instanceof DataException d) {
                throw d;
            }
            throw new DataException("cannot read latent statistics " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Mean and unbiased std per channel over N,H,W of min(size, {@value #MAX_SAMPLES}) evenly spaced samples, in
     * float64 with two passes (mean first, then squared deviations) so that a large mean costs no precision.
     * {@code where} names the data for {@link #source()}.
     */
    static LatentStats compute(RawLatents data, int size, int channels, int height, int width, String where) {
        int samples = Math.min(MAX_SAMPLES, size);
        int plane = height * width;
        float[] z = new float[channels * plane];
        double[] sum = new double[channels];
        for (int k = 0; k < samples; k++) {
            data.read(spaced(k, samples, size), z);
            for (int c = 0; c < channels; c++) {
                for (int i = 0; i < plane; i++) {
                    sum[c] += z[c * plane + i];
                }
            }
        }
        long n = (long) samples * plane;
        double[] mu = new double[channels];
        for (int c = 0; c < channels; c++) {
            mu[c] = sum[c] / n;
        }
        double[] squares = new double[channels];
        for (int k = 0; k < samples; k++) {
            data.read(spaced(k, samples, size), z);
            for (int c = 0; c < channels; c++) {
                for (int i = 0; i < plane; i++) {
                    double d = z[c * plane + i] - mu[c];
                    squares[c] += d * d;
                }
            }
        }
        float[] mean = new float[channels];
        float[] std = new float[channels];
        for (int c = 0; c < channels; c++) {
            mean[c] = (float) mu[c];
            std[c] = n > 1 ? (float) Math.sqrt(squares[c] / (n - 1)) : Float.NaN;
        }
        return new LatentStats(mean, std, "mean/std computed over " + samples + " un-flipped latents " + where);
    }

    private static int spaced(int k, int samples, int size) {
        return (int) ((long) k * size / samples);
    }

    @Override
    public float[] mean() {
        return mean.clone();
    }

    @Override
    public float[] std() {
        return std.clone();
    }
}
