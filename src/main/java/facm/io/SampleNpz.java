package facm.io;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * Generated samples as a numpy {@code .npz} in the layout the usual FID tools read.
 * <ul>
 * <li>Images (1 or 3 channels, model space [-1, 1]): {@code arr_0} uint8 {@code [N, H, W, C]}, each value
 * round((clamp(v, −1, 1) + 1)/2 · 255) as in our PNGs — the sample batch of the ADM evaluator (guided-diffusion's
 * evaluations/evaluator.py reads {@code arr_0} as NHWC in [0, 255]). That evaluator's Inception network takes 3
 * channels: repeat a gray channel first ({@code np.repeat(a, 3, axis=-1)}).
 * <li>Latents (any other channel count): {@code arr_0} float32 {@code [N, C, H, W]} in model space, NCHW as a VAE
 * decoder takes them; decode with z = x·std + mean first (facm-spec.md §2.2).
 * </ul>
 * The labels are in {@code arr_1} (int64 {@code [N]}: {@code np.savez(path, samples, labels)}, as guided-diffusion's
 * sampling scripts write class-conditional batches) and, by name, in {@code labels}.
 */
public final class SampleNpz {
    private SampleNpz() {
    }

    /** Whether samples of {@code channels} channels are written as images (else as latents). */
    public static boolean isImage(int channels) {
        return channels == 1 || channels == 3;
    }

    /** Writes {@code n = labels.length} samples {@code [N, C, H, W]} (row-major in {@code samples}). */
    public static void write(Path file, float[] samples, int[] labels, int channels, int height, int width)
            throws IOException {
        int n = labels.length;
        long per = (long) channels * height * width;
        if (samples.length != n * per) {
            throw new IllegalArgumentException(n + " samples of " + channels + "x" + height + "x" + width + " need "
                    + n * per + " values, got " + samples.length);
        }
        long[] y = new long[n];
        for (int i = 0; i < n; i++) {
            y[i] = labels[i];
        }
        NpzWriter.Array data = isImage(channels)
                ? NpzWriter.Array.u8("arr_0", new int[] {n, height, width, channels},
                nhwcBytes(samples, n, channels, height, width))
                : NpzWriter.Array.f32("arr_0", new int[] {n, channels, height, width}, samples);
        NpzWriter.write(file, List.of(data, NpzWriter.Array.i64("arr_1", new int[] {n}, y),
                NpzWriter.Array.i64("labels", new int[] {n}, y)));
    }

    /** NCHW floats in [-1, 1] to NHWC bytes, mapped as {@link PngWriter#writeGrid} maps them. */
    static byte[] nhwcBytes(float[] nchw, int n, int c, int h, int w) {
        byte[] out = new byte[Math.toIntExact((long) n * c * h * w)];
        for (int i = 0; i < n; i++) {
            for (int ch = 0; ch < c; ch++) {
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        float v = nchw[((i * c + ch) * h + y) * w + x];
                        int b = Math.round((Math.max(-1f, Math.min(1f, v)) + 1f) * 0.5f * 255f);
                        out[((i * h + y) * w + x) * c + ch] = (byte) b;
                    }
                }
            }
        }
        return out;
    }
}
