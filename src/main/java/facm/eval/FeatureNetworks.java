package facm.eval;

import facm.classifier.Classifier;
import facm.tensor.Backend;
import facm.tensor.Tensor;

import java.nio.file.Path;

/**
 * Opens the feature network of an evaluation: a classifier file written by {@code train-classifier}, or (file null)
 * the Fashion-MNIST classifier bundled in the jar.
 */
public final class FeatureNetworks {
    private FeatureNetworks() {
    }

    /** An open feature network, what it came from, and what to close when done. */
    public record Opened(FeatureExtractor extractor, String source, AutoCloseable owner) implements AutoCloseable {
        @Override
        public void close() {
            try {
                owner.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing the feature network " + source + ": " + e.getMessage(), e);
            }
        }
    }

    /** The classifier in {@code file}, or the bundled Fashion-MNIST one when {@code file} is null, on {@code be}. */
    public static Opened open(Path file, Backend be) {
        Classifier c = file == null ? Classifier.bundledFashionMnist(be) : Classifier.load(file, be);
        return new Opened(of(c), file == null ? "bundled Fashion-MNIST classifier" : file.toString(), c);
    }

    /** The classifier as a feature network (the same methods; the classifier stays the caller's to close). */
    public static FeatureExtractor of(Classifier c) {
        return new FeatureExtractor() {
            @Override
            public int featureDim() {
                return c.featureDim();
            }

            @Override
            public int numClasses() {
                return c.numClasses();
            }

            @Override
            public Tensor features(Tensor images) {
                return c.features(images);
            }

            @Override
            public Tensor logits(Tensor images) {
                return c.logits(images);
            }

            @Override
            public String describe() {
                return c.describe();
            }
        };
    }
}
