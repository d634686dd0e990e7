package facm.eval;

import facm.tensor.Tensor;

/**
 * A network that maps images to feature vectors (for FID) and class logits (for class consistency), on the backend
 * that holds the images. {@code facm.classifier.Classifier} has exactly these methods; tests use small fakes.
 */
public interface FeatureExtractor {

    /** Length of one feature vector. */
    int featureDim();

    /** Number of classes of {@link #logits}. */
    int numClasses();

    /** Features {@code [N, featureDim]} of images {@code [N, C, H, W]} in model space ([-1, 1]); the caller closes. */
    Tensor features(Tensor images);

    /** Class logits {@code [N, numClasses]} of images {@code [N, C, H, W]}; the caller closes. */
    Tensor logits(Tensor images);

    /** One line for logs and eval.json: what network, trained on what, its accuracy where known. */
    String describe();

    /**
     * Features and logits of the same images. This default runs the network twice; a network whose logits are a
     * head on its features should override it with one pass (the evaluation asks for both on every batch).
     */
    default Outputs featuresAndLogits(Tensor images) {
        Tensor f = features(images);
        try {
            return new Outputs(f, logits(images));
        } catch (RuntimeException e) {
            f.close();
            throw e;
        }
    }

    /** Features {@code [N, featureDim]} and logits {@code [N, numClasses]}; closing closes both. */
    record Outputs(Tensor features, Tensor logits) implements AutoCloseable {
        @Override
        public void close() {
            try {
                features.close();
            } finally {
                logits.close();
            }
        }
    }
}
