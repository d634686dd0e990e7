package facm.eval;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;

/**
 * A stand-in feature network for tests: features = tanh(x·W) of the flattened image with a fixed Gaussian W
 * ({@code [C·H·W, dim]}, scaled by 1/√(C·H·W)), logits = features·V with another fixed V. Random features of pixels
 * separate data from noise well, which is all the FID tests need; the class logits are meaningless.
 */
public final class RandomProjectionFeatures implements FeatureExtractor, AutoCloseable {
    private final Tensor projection;
    private final Tensor head;
    private final int inputLength;
    private final int dim;
    private final int classes;

    public RandomProjectionFeatures(Backend be, int channels, int side, int dim, int classes, long seed) {
        this.inputLength = channels * side * side;
        this.dim = dim;
        this.classes = classes;
        float[] w = new float[inputLength * dim];
        float scale = (float) (1 / Math.sqrt(inputLength));
        for (int i = 0; i < w.length; i++) {
            w[i] = Philox.normal(seed, i) * scale;
        }
        float[] v = new float[dim * classes];
        for (int i = 0; i < v.length; i++) {
            v[i] = Philox.normal(seed + 1, i);
        }
        this.projection = be.upload("projection", w, inputLength, dim);
        this.head = be.upload("head", v, dim, classes);
    }

    @Override
    public int featureDim() {
        return dim;
    }

    @Override
    public int numClasses() {
        return classes;
    }

    @Override
    public Tensor features(Tensor images) {
        Backend be = images.backend();
        Tensor flat = images.reshape(images.dim(0), inputLength);
        Tensor f = be.matmul(flat, false, projection, false, GemmPrecision.FP32);
        be.unary(UnaryOp.TANH, f, f);
        return f;
    }

    @Override
    public Tensor logits(Tensor images) {
        try (Tensor f = features(images)) {
            return images.backend().matmul(f, false, head, false, GemmPrecision.FP32);
        }
    }

    /** One pass: the logits are the head on the same features. */
    @Override
    public Outputs featuresAndLogits(Tensor images) {
        Tensor f = features(images);
        return new Outputs(f, images.backend().matmul(f, false, head, false, GemmPrecision.FP32));
    }

    @Override
    public String describe() {
        return "random projection features (" + dim + "), test stand-in";
    }

    @Override
    public void close() {
        projection.close();
        head.close();
    }
}
