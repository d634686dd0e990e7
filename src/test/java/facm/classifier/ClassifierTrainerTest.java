package facm.classifier;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The learning-rate schedule, the options' checks and the augmentation's determinism and geometry. */
class ClassifierTrainerTest {

    private static ClassifierTrainer.Options options(String schedule, int warmup) {
        return new ClassifierTrainer.Options(2, 8, 1e-3f, 0f, schedule, warmup, 1f, "none", 0, 10, 10);
    }

    @Test
    void warmupThenCosineOrConstant() {
        ClassifierTrainer.Options cosine = options("cosine", 10);
        long total = 1000;
        assertEquals(1e-3f / 11, ClassifierTrainer.learningRate(cosine, 1, total), 1e-9f);
        assertEquals(1e-3f * 10 / 11, ClassifierTrainer.learningRate(cosine, 10, total), 1e-9f);
        assertEquals(1e-3f, ClassifierTrainer.learningRate(cosine, 11, total), 1e-8f);
        assertEquals(0.5e-3f, ClassifierTrainer.learningRate(cosine, 10 + 495, total), 1e-8f);
        assertEquals(0f, ClassifierTrainer.learningRate(cosine, total, total), 1e-9f);
        float previous = Float.MAX_VALUE;
        for (long s = 11; s <= total; s++) {
            float lr = ClassifierTrainer.learningRate(cosine, s, total);
            assertTrue(lr <= previous, "the cosine decays monotonically");
            previous = lr;
        }
        ClassifierTrainer.Options constant = options("constant", 10);
        assertEquals(1e-3f, ClassifierTrainer.learningRate(constant, 500, total));
        assertEquals(1e-3f, ClassifierTrainer.learningRate(constant, total, total));
        // The warm-up is capped at a tenth of the run.
        ClassifierTrainer.Options long_ = options("cosine", 10_000);
        assertEquals(1e-3f * 100 / 101, ClassifierTrainer.learningRate(long_, 100, total), 1e-9f);
        assertEquals(1e-3f, ClassifierTrainer.learningRate(long_, 101, total), 1e-8f);
    }

    @Test
    void optionsRejectBadValues() {
        assertThrows(IllegalArgumentException.class, () -> options("linear", 0));
        assertThrows(IllegalArgumentException.class,
                () -> new ClassifierTrainer.Options(0, 8, 1e-3f, 0f, "cosine", 0, 1f, "none", 0, 10, 10));
        assertThrows(IllegalArgumentException.class,
                () -> new ClassifierTrainer.Options(1, 8, 0f, 0f, "cosine", 0, 1f, "none", 0, 10, 10));
        var e = assertThrows(IllegalArgumentException.class,
                () -> new ClassifierTrainer.Options(1, 8, 1e-3f, 0f, "cosine", 0, 1f, "rotate", 0, 10, 10));
        assertEquals("--augment must be none, flip, flip-shift or flip-shift:N (N = 1..4), not 'rotate'",
                e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> new ClassifierTrainer.Options(1, 8, 1e-3f, 0f, "cosine", 0, 1f, "flip-shift:5", 0, 10, 10));
        assertThrows(IllegalArgumentException.class,
                () -> new ClassifierTrainer.Options(1, 8, 1e-3f, 0f, "cosine", 0, 1f, "flip-shift:x", 0, 10, 10));
        new ClassifierTrainer.Options(1, 8, 1e-3f, 0f, "cosine", 0, 1f, "flip-shift:1", 0, 10, 10);
    }

    /** Two 1×4×4 images with distinct pixel values. */
    private static float[] images() {
        float[] v = new float[32];
        for (int i = 0; i < v.length; i++) {
            v[i] = i / 32f;
        }
        return v;
    }

    @Test
    void augmentationIsAPureFunctionOfSeedEpochAndIndex() {
        int[] shape = {2, 1, 4, 4};
        ImageAugmentation aug = ImageAugmentation.parse("flip-shift", 7);
        float[] a = images(), b = images();
        aug.apply(a, shape, new int[] {3, 9}, 2);
        aug.apply(b, shape, new int[] {3, 9}, 2);
        assertArrayEquals(a, b, "same seed, epoch and indices");
        // Sample 0 of one call equals sample 1 of another when both carry dataset index 3.
        float[] c = images();
        System.arraycopy(images(), 0, c, 16, 16);
        aug.apply(c, shape, new int[] {5, 3}, 2);
        assertArrayEquals(java.util.Arrays.copyOf(a, 16), java.util.Arrays.copyOfRange(c, 16, 32));

        boolean someEpochDiffers = false;
        for (long epoch = 3; epoch < 20 && !someEpochDiffers; epoch++) {
            float[] d = images();
            aug.apply(d, shape, new int[] {3, 9}, epoch);
            someEpochDiffers = !java.util.Arrays.equals(a, d);
        }
        assertTrue(someEpochDiffers, "other epochs draw other flips and shifts");

        float[] none = images();
        ImageAugmentation.parse("none", 7).apply(none, shape, new int[] {3, 9}, 2);
        assertArrayEquals(images(), none);
    }

    @Test
    void flipsMirrorRowsAndShiftsFillWithBackground() {
        int[] shape = {1, 1, 4, 4};
        int flips = 0, shifted = 0;
        for (int index = 0; index < 64; index++) {
            float[] flipOnly = java.util.Arrays.copyOf(images(), 16);
            ImageAugmentation.parse("flip", 1).apply(flipOnly, shape, new int[] {index}, 0);
            float[] original = java.util.Arrays.copyOf(images(), 16);
            if (!java.util.Arrays.equals(flipOnly, original)) {
                flips++;
                for (int y = 0; y < 4; y++) {
                    for (int x = 0; x < 4; x++) {
                        assertEquals(original[y * 4 + 3 - x], flipOnly[y * 4 + x]);
                    }
                }
            }
            float[] moved = java.util.Arrays.copyOf(images(), 16);
            ImageAugmentation.parse("flip-shift", 1).apply(moved, shape, new int[] {index}, 0);
            int background = 0;
            for (float v : moved) {
                background += v == ImageAugmentation.BACKGROUND ? 1 : 0;
            }
            shifted += background > 0 ? 1 : 0;
            for (float v : moved) {
                assertTrue(v == ImageAugmentation.BACKGROUND || (v >= 0 && v < 0.5f), "a pixel of the image or "
                        + "background: " + v);
            }
        }
        assertTrue(flips > 16 && flips < 48, "about half of the images are flipped: " + flips + " of 64");
        assertTrue(shifted > 32, "most images move (25 shifts, one of them zero): " + shifted + " of 64");
    }
}
