package facm.classifier;

import facm.tensor.Philox;

import java.util.Locale;

/**
 * Training-time augmentation of a host batch {@code [B, C, H, W]}, a pure function of (seed, epoch, dataset index) so
 * a run is reproducible from its seed. Specs: {@code none}; {@code flip} (a horizontal flip with probability ½);
 * {@code flip-shift} or {@code flip-shift:N} (the flip, then a translation by −N..N pixels along each axis, N = 2 by
 * default, the uncovered border filled with the background value −1, black in model space). Fashion-MNIST's 28×28
 * articles sit in 32×32 frames with a 2-pixel margin, so a shift of up to 2 keeps them whole.
 */
final class ImageAugmentation {
    static final int DEFAULT_SHIFT = 2;
    static final int LARGEST_SHIFT = 4;
    static final float BACKGROUND = -1f;
    /** "augm" in ASCII, mixed into the seed so these draws are independent of the shuffle's. */
    private static final long PURPOSE = 0x6175676dL << 32;

    private final boolean flip;
    private final int maxShift;
    private final long seed;

    private ImageAugmentation(boolean flip, int maxShift, long seed) {
        this.flip = flip;
        this.maxShift = maxShift;
        this.seed = seed;
    }

    /** The augmentation a spec names (see the class comment), drawing from {@code seed}. */
    static ImageAugmentation parse(String spec, long seed) {
        String s = spec.trim().toLowerCase(Locale.ROOT);
        if (s.equals("none")) {
            return new ImageAugmentation(false, 0, seed);
        }
        if (s.equals("flip")) {
            return new ImageAugmentation(true, 0, seed);
        }
        if (s.equals("flip-shift")) {
            return new ImageAugmentation(true, DEFAULT_SHIFT, seed);
        }
        if (s.startsWith("flip-shift:")) {
            try {
                int n = Integer.parseInt(s.substring("flip-shift:".length()));
                if (n >= 1 && n <= LARGEST_SHIFT) {
                    return new ImageAugmentation(true, n, seed);
                }
            } catch (NumberFormatException bad) {
                // reported below
            }
        }
        throw new IllegalArgumentException("--augment must be none, flip, flip-shift or flip-shift:N (N = 1.."
                + LARGEST_SHIFT + "), not '" + spec + "'");
    }

    /** Augments every sample of {@code images} in place; {@code indices} are the samples' dataset indices. */
    void apply(float[] images, int[] shape, int[] indices, long epoch) {
        if (!flip && maxShift == 0) {
            return;
        }
        int c = shape[1], h = shape[2], w = shape[3];
        int plane = h * w;
        float[] scratch = new float[plane];
        int[] words = new int[4];
        long key = epochKey(epoch);
        for (int s = 0; s < shape[0]; s++) {
            Philox.block(key, indices[s], words);
            boolean mirror = flip && (words[0] & 1) != 0;
            int dx = Math.floorMod(words[1], 2 * maxShift + 1) - maxShift;
            int dy = Math.floorMod(words[2], 2 * maxShift + 1) - maxShift;
            for (int ch = 0; ch < c; ch++) {
                int base = (s * c + ch) * plane;
                transform(images, base, h, w, mirror, dx, dy, scratch);
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
}
