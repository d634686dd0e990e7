package facm.eval;

import facm.tensor.ShapeException;
import facm.tensor.Tensor;

/**
 * Runs image batches through a {@link FeatureExtractor} on the images' backend and keeps what an evaluation needs of
 * them: the streaming float64 moments of the features (for FID) and, for batches given labels, how many images the
 * classifier puts in their labelled class (argmax of the logits; ties go to the lower class).
 */
public final class FeatureScorer {
    private final FeatureExtractor extractor;
    private final FeatureStatistics statistics;
    private long labelled;
    private long correct;

    public FeatureScorer(FeatureExtractor extractor) {
        this.extractor = extractor;
        this.statistics = new FeatureStatistics(extractor.featureDim());
    }

    /** Scores images {@code [N, C, H, W]}; {@code labels} ({@code [N]}) may be null to skip the classification. */
    public void add(Tensor images, int[] labels) {
        int n = images.dim(0);
        if (labels == null) {
            try (Tensor f = extractor.features(images)) {
                addFeatures(images, f);
            }
            return;
        }
        if (labels.length != n) {
            throw new IllegalArgumentException(labels.length + " labels for " + n + " images");
        }
        try (FeatureExtractor.Outputs out = extractor.featuresAndLogits(images)) {
            addFeatures(images, out.features());
            int k = extractor.numClasses();
            Tensor l = out.logits();
            if (l.rank() != 2 || l.dim(0) != n || l.dim(1) != k) {
                throw new ShapeException("logits of " + images.describe() + " came back as " + l.describe()
                        + ", expected [" + n + ", " + k + "]");
            }
            float[] logits = images.backend().download(l);
            for (int i = 0; i < n; i++) {
                if (argmax(logits, i * k, k) == labels[i]) {
                    correct++;
                }
            }
            labelled += n;
        }
    }

    private void addFeatures(Tensor images, Tensor f) {
        int n = images.dim(0);
        if (f.rank() != 2 || f.dim(0) != n || f.dim(1) != extractor.featureDim()) {
            throw new ShapeException("features of " + images.describe() + " came back as " + f.describe()
                    + ", expected [" + n + ", " + extractor.featureDim() + "]");
        }
        statistics.add(images.backend().download(f), n);
    }

    static int argmax(float[] v, int offset, int length) {
        int best = 0;
        for (int j = 1; j < length; j++) {
            if (v[offset + j] > v[offset + best]) {
                best = j;
            }
        }
        return best;
    }

    public FeatureStatistics.Moments moments() {
        return statistics.moments();
    }

    public long count() {
        return statistics.count();
    }

    /** Share of labelled images classified as their label, or null when no batch carried labels. */
    public Double accuracy() {
        return labelled == 0 ? null : (double) correct / labelled;
    }
}
