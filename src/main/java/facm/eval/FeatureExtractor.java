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
}
