package facm.classifier;

import facm.tensor.Philox;

import java.util.Locale;

/**
 * Training-time augmentation of a host batch {@code [B, C, H, W]}, a pure function of (seed, epoch, dataset index) so
 * a run is reproducible from its seed: a horizontal flip with probability ½ and, for {@link Mode#FLIP_SHIFT}, a
 * translation by up to {@link #MAX_SHIFT} pixels along each axis, the uncovered border filled with the background
 * value −1 (black in model space). Fashion-MNIST's 28×28 articles sit in 32×32 frames with a 2-pixel margin, so a
 * shift of 2 keeps them whole.
 */
final class ImageAugmentation {
    static final int MAX_SHIFT = 2;
    static final float BACKGROUND = -1f;
    /** "augm" in ASCII, mixed into the seed so these draws are independent of the shuffle's. */
    private static final long PURPOSE = 0x6175676dL << 32;

    enum Mode {
        NONE, FLIP, FLIP_SHIFT;

        static Mode parse(String s) {
            return switch (s.trim().toLowerCase(Locale.ROOT)) {
                case "none" -> NONE;
                case "flip" -> FLIP;
                case "flip-shift", "flip+shift" -> FLIP_SHIFT;
                default -> throw new IllegalArgumentException("--augment must be none, flip or flip-shift, not '" + s
                        + "'");
            };
        }

        String label() {
            return name().toLowerCase(Locale.ROOT).replace('_', '-');
        }
    }

    private final Mode mode;
    private final long seed;

    ImageAugmentation(Mode mode, long seed) {
        this.mode = mode;
        this.seed = seed;
    }

    /** Augments every sample of {@code images} in place; {@code indices} are the samples' dataset indices. */
    void apply(float[] images, int[] shape, int[] indices, long epoch) {
        if (mode == Mode.NONE) {
            return;
        }
        int c = shape[1], h = shape[2], w = shape[3];
        int plane = h * w;
        float[] scratch = new float[plane];
        int[] words = new int[4];
        long key = epochKey(epoch);
        for (int s = 0; s < shape[0]; s++) {
            Philox.block(key, indices[s], words);
            boolean flip = (words[0] & 1) != 0;
            int dx = 0, dy = 0;
            if (mode == Mode.FLIP_SHIFT) {
                dx = Math.floorMod(words[1], 2 * MAX_SHIFT + 1) - MAX_SHIFT;
                dy = Math.floorMod(words[2], 2 * MAX_SHIFT + 1) - MAX_SHIFT;
            }
            for (int ch = 0; ch < c; ch++) {
                int base = (s * c + ch) * plane;
                transform(images, base, h, w, flip, dx, dy, scratch);
            }
        }
    }

    /** out(y, x) = in(y − dy, x' − dx) with x' the (flipped) column; outside the image: background. */
    private static void transform(float[] images, int base, int h, int w, boolean flip, int dx, int dy,
                                  float[] scratch) {
        if (!flip && dx == 0 && dy == 0) {
            return;
        }
        System.arraycopy(images, base, scratch, 0, h * w);
        for (int y = 0; y < h; y++) {
            int sy = y - dy;
            for (int x = 0; x < w; x++) {
                int sx = (flip ? w - 1 - x : x) - dx;
                images[base + y * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? scratch[sy * w + sx]
                        : BACKGROUND;
            }
        }
    }

    private long epochKey(long epoch) {
        int[] w = new int[4];
        Philox.block(seed ^ PURPOSE, epoch, w);
        return (w[0] & 0xFFFFFFFFL) | ((long) w[1] << 32);
    }

    Mode mode() {
        return mode;
    }
}
