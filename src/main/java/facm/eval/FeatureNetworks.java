package facm.eval;

import facm.tensor.Backend;

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

    /**
     * The classifier in {@code file}, or the bundled one when {@code file} is null, on {@code be}.
     *
     * <p>Stand-in until facm.classifier is on this branch: the classifier (Classifier.load / bundledFashionMnist)
     * has exactly the {@link FeatureExtractor} methods, so wiring it is an adapter of a few lines here.
     */
    public static Opened open(Path file, Backend be) {
        throw new IllegalStateException("this build has no classifier yet (facm.classifier): eval needs one for "
                + "its features" + (file == null ? "" : "; cannot load " + file));
    }
}
