package facm.eval;

import facm.backend.cpu.CpuBackend;
import facm.classifier.Classifier;
import facm.data.Dataset;
import facm.data.Datasets;
import facm.tensor.Backend;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * FID on the bundled Fashion-MNIST test split through a feature network: two disjoint halves of the data are close,
 * Gaussian noise images are far. Checked with the classifier that ships in the jar (the features {@code eval} uses)
 * and with a random-projection stand-in ({@link RandomProjectionFeatures}) that knows nothing of the data.
 */
class FidOnDataTest {
    private static final int BATCH = 500;

    /** Moments of the images with index ≡ parity (mod 2): the even and the odd half are disjoint, 5000 each. */
    private static FeatureStatistics.Moments half(Dataset d, int parity, Backend be, FeatureExtractor fx) {
        return half(d, parity, d.size() / 2, be, fx);
    }

    /** Moments of the first {@code count} images with index ≡ parity (mod 2). */
    private static FeatureStatistics.Moments half(Dataset d, int parity, int count, Backend be, FeatureExtractor fx) {
        FeatureScorer scorer = new FeatureScorer(fx);
        int len = d.sampleLength();
        for (int s = 0; s < count; s += BATCH) {
            int b = Math.min(BATCH, count - s);
            float[] images = new float[b * len];
            for (int i = 0; i < b; i++) {
                d.read(2 * (s + i) + parity, images, i * len);
            }
            try (Tensor x = be.upload("half", images, b, d.channels(), d.height(), d.width())) {
                scorer.add(x, null);
            }
        }
        return scorer.moments();
    }

    private static FeatureStatistics.Moments noise(Dataset d, int count, Backend be, FeatureExtractor fx) {
        FeatureScorer scorer = new FeatureScorer(fx);
        int len = d.sampleLength();
        for (int s = 0; s < count; s += BATCH) {
            int b = Math.min(BATCH, count - s);
            float[] images = new float[b * len];
            for (int i = 0; i < images.length; i++) {
                images[i] = Philox.normal(5, (long) s * len + i);
            }
            try (Tensor x = be.upload("noise", images, b, d.channels(), d.height(), d.width())) {
                scorer.add(x, null);
            }
        }
        return scorer.moments();
    }

    /**
     * The shipped classifier's 128-d features (what {@code eval} scores with): the 5000 even- against the 5000
     * odd-indexed test images, and 5000 Gaussian-noise images. The halves' FID is the finite-sample floor of this n
     * (about 0.2: the bias of the covariance estimates, falling as 1/n); noise is hundreds of times further.
     */
    @Test
    void shippedClassifierSeesHalvesCloseAndNoiseFar() {
        try (Backend be = new CpuBackend(2); Dataset d = Datasets.open(Datasets.BUNDLED);
             Classifier c = Classifier.bundledFashionMnist(be)) {
            int n = d.size() / 2;
            FeatureExtractor fx = FeatureNetworks.of(c);
            FeatureStatistics.Moments even = half(d, 0, n, be, fx);
            FeatureStatistics.Moments odd = half(d, 1, n, be, fx);
            FeatureStatistics.Moments noise = noise(d, n, be, fx);
            double halves = FrechetDistance.between(even, odd);
            double noiseFid = FrechetDistance.between(noise, even);
            System.out.printf("FID (shipped classifier, %d-d features, n=%d): even vs odd half %.4f, noise vs even "
                    + "half %.1f, ratio %.2e%n", fx.featureDim(), n, halves, noiseFid, halves / noiseFid);
            assertTrue(halves >= 0 && halves < 0.5, "two halves of the same data must be near zero: " + halves);
            assertTrue(noiseFid > 100, "noise must be far from the data: " + noiseFid);
            assertTrue(halves < 5e-3 * noiseFid, "halves " + halves + " vs noise " + noiseFid);
        }
    }

    @Test
    void halvesOfTheDataAreCloseAndNoiseIsFar() {
        try (Backend be = new CpuBackend(2); Dataset d = Datasets.open(Datasets.BUNDLED);
             RandomProjectionFeatures fx = new RandomProjectionFeatures(be, 1, 32, 64, 10, 17)) {
            FeatureStatistics.Moments even = half(d, 0, be, fx);
            FeatureStatistics.Moments odd = half(d, 1, be, fx);
            FeatureStatistics.Moments noise = noise(d, 5000, be, fx);
            double halves = FrechetDistance.between(even, odd);
            double noiseFid = FrechetDistance.between(noise, even);
            System.out.printf("FID (random-projection features, 64-d): even vs odd half of the bundled test split "
                    + "%.5f, noise vs even half %.3f, ratio %.2e%n", halves, noiseFid, halves / noiseFid);
            assertTrue(halves >= 0 && halves < 0.01 * noiseFid, "halves " + halves + " vs noise " + noiseFid);
            assertTrue(noiseFid > 1, "noise must be far from the data: " + noiseFid);
        }
    }

    @Test
    void referenceStatisticsAreBatchIndependentAndCountTheClassifierHits() {
        try (Backend be = new CpuBackend(2); Dataset d = Datasets.open(Datasets.BUNDLED);
             RandomProjectionFeatures fx = new RandomProjectionFeatures(be, 1, 32, 16, 10, 3)) {
            PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
            FidEvaluation.Reference a = FidEvaluation.reference(d, 300, 300, be, fx, true, quiet);
            FidEvaluation.Reference b = FidEvaluation.reference(d, 300, 7, be, fx, false, quiet);
            assertEquals(300, a.count());
            assertEquals(0, FrechetDistance.between(a.moments(), b.moments()), 1e-9);
            assertTrue(a.classifierAccuracy() >= 0 && a.classifierAccuracy() <= 1);
            assertEquals(null, b.classifierAccuracy(), "no classification asked for");
            FeatureExtractor twoPasses = new FeatureExtractor() { // the interface's default featuresAndLogits
                public int featureDim() {
                    return fx.featureDim();
                }

                public int numClasses() {
                    return fx.numClasses();
                }

                public Tensor features(Tensor images) {
                    return fx.features(images);
                }

                public Tensor logits(Tensor images) {
                    return fx.logits(images);
                }

                public String describe() {
                    return "two passes";
                }
            };
            FidEvaluation.Reference c = FidEvaluation.reference(d, 300, 64, be, twoPasses, true, quiet);
            assertEquals(a.classifierAccuracy(), c.classifierAccuracy(), 1e-12);
        }
    }

    @Test
    void labelsCycleOrAreUniformFromTheSeed() {
        assertEquals(java.util.List.of(0, 1, 2, 0, 1), java.util.Arrays.stream(FidEvaluation.labels(5, 3, false, 0))
                .boxed().toList());
        int[] r1 = FidEvaluation.labels(3000, 10, true, 4);
        int[] r2 = FidEvaluation.labels(3000, 10, true, 4);
        assertEquals(java.util.Arrays.toString(r1), java.util.Arrays.toString(r2), "same seed, same classes");
        int[] counts = new int[10];
        for (int y : r1) {
            counts[y]++;
        }
        for (int c : counts) {
            assertTrue(c > 220 && c < 380, "roughly uniform: " + java.util.Arrays.toString(counts));
        }
        int[] idx = FidEvaluation.referenceIndices(10, 4);
        assertEquals("[0, 2, 5, 7]", java.util.Arrays.toString(idx));
    }
}
