package facm.eval;

import facm.data.Dataset;
import facm.tensor.Backend;
import facm.tensor.Philox;
import facm.tensor.Tensor;

import java.io.PrintStream;
import java.util.Arrays;

/**
 * The two halves of an evaluation, both batched on one backend: the reference moments of a data set's features
 * (computed once per run and reused for every NFE), and the FID, class consistency and timing of one set of generated
 * samples against them.
 */
public final class FidEvaluation {
    /** Salt of the random-class stream, so it shares no Philox counters with the sampling noise of the same seed. */
    private static final long CLASS_SEED_SALT = 0x3C6EF372FE94F82BL;

    private FidEvaluation() {
    }

    /** Generates images {@code [labels.length, C, H, W]} on the backend: samples start.. of the run, these labels. */
    @FunctionalInterface
    public interface SampleSource {
        Tensor generate(int start, int[] labels);
    }

    /**
     * The data's side: feature moments of {@code count} images, and the classifier's accuracy on them (null when the
     * data's classes are not the classifier's).
     */
    public record Reference(FeatureStatistics.Moments moments, Double classifierAccuracy, int count) {
    }

    /**
     * One NFE's numbers. {@code generateSeconds} is the sampling alone (network evaluations and the sampler's host
     * work, device synchronized), {@code totalSeconds} adds the feature extraction.
     */
    public record NfeResult(int nfe, int n, FrechetDistance.Parts fid, Double classConsistency, double generateSeconds,
                            double totalSeconds) {
        public double fidValue() {
            return fid.value();
        }

        /** Milliseconds of sampling per network evaluation per image. */
        public double msPerEvaluationPerImage() {
            return generateSeconds * 1000 / ((double) n * nfe);
        }

        public double samplesPerSecond() {
            return n / Math.max(1e-12, generateSeconds);
        }
    }

    /**
     * Labels of an n-sample run: class i mod K for sample i ({@code random} false: the FID protocol of facm-spec.md
     * §7, equal counts per class when K divides n), or uniform over 0..K−1 from Philox(seed, i).
     */
    public static int[] labels(int n, int numClasses, boolean random, long seed) {
        if (numClasses < 1) {
            throw new IllegalArgumentException("need at least one class, got " + numClasses);
        }
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = random ? Math.min(numClasses - 1, (int) (Philox.uniform(seed ^ CLASS_SEED_SALT, i) * numClasses))
                    : i % numClasses;
        }
        return y;
    }

    /** {@code count} indices spread evenly over {@code [0, size)} (all of them when count = size). */
    static int[] referenceIndices(int size, int count) {
        if (count < 2 || count > size) {
            throw new IllegalArgumentException("reference size " + count + " must be in 2.." + size);
        }
        int[] idx = new int[count];
        for (int i = 0; i < count; i++) {
            idx[i] = (int) ((long) i * size / count);
        }
        return idx;
    }

    /**
     * Feature moments of {@code count} images of {@code data} (evenly spread), in batches of {@code batch}; with
     * {@code classify}, also the classifier's accuracy on their labels.
     */
    public static Reference reference(Dataset data, int count, int batch, Backend be, FeatureExtractor fx,
                                      boolean classify, PrintStream out) {
        int[] idx = referenceIndices(data.size(), count);
        FeatureScorer scorer = new FeatureScorer(fx);
        int len = data.sampleLength();
        Progress progress = new Progress(out, "reference features", "images", count);
        for (int s = 0; s < count; s += batch) {
            int b = Math.min(batch, count - s);
            float[] images = new float[b * len];
            int[] labels = new int[b];
            for (int i = 0; i < b; i++) {
                data.read(idx[s + i], images, i * len);
                labels[i] = data.label(idx[s + i]);
            }
            try (Tensor x = be.upload("reference_images", images, b, data.channels(), data.height(), data.width())) {
                scorer.add(x, classify ? labels : null);
            }
            progress.update(s + b);
        }
        return new Reference(scorer.moments(), scorer.accuracy(), count);
    }

    /**
     * Generates {@code labels.length} samples in batches, scores them and compares them with the reference. With
     * {@code classify}, the class consistency is the share of samples the classifier puts in the class asked for.
     */
    public static NfeResult generated(int nfe, int[] labels, int batch, Backend be, SampleSource source,
                                      FeatureExtractor fx, Reference reference, boolean classify, String what,
                                      PrintStream out) {
        int n = labels.length;
        FeatureScorer scorer = new FeatureScorer(fx);
        Progress progress = new Progress(out, what, "samples", n);
        long generateNanos = 0;
        long start = System.nanoTime();
        for (int s = 0; s < n; s += batch) {
            int b = Math.min(batch, n - s);
            int[] y = Arrays.copyOfRange(labels, s, s + b);
            long t0 = System.nanoTime();
            try (Tensor x = source.generate(s, y)) {
                be.synchronize();
                generateNanos += System.nanoTime() - t0;
                if (x.rank() != 4 || x.dim(0) != b) {
                    throw new IllegalStateException("the sampler returned " + x.describe() + " for a batch of " + b);
                }
                scorer.add(x, classify ? y : null);
            }
            progress.update(s + b);
        }
        double total = (System.nanoTime() - start) / 1e9;
        FrechetDistance.Parts fid = FrechetDistance.parts(scorer.moments(), reference.moments());
        return new NfeResult(nfe, n, fid, scorer.accuracy(), generateNanos / 1e9, total);
    }
}
