package facm.eval;

import facm.backend.cpu.CpuBackend;
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
 * Gaussian noise images are far. The stand-in network is {@link RandomProjectionFeatures}.
 */
class FidOnDataTest {
    private static final int BATCH = 500;

    /** Moments of the images with index ≡ parity (mod 2): the even and the odd half are disjoint, 5000 each. */
    private static FeatureStatistics.Moments half(Dataset d, int parity, Backend be, FeatureExtractor fx) {
        FeatureScorer scorer = new FeatureScorer(fx);
        int len = d.sampleLength();
        int count = d.size() / 2;
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
