package facm.classifier;

import facm.autograd.Tape;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Gradient buffers and AdamW state for every tensor of a {@link ClassifierWeights}, updated with
 * {@link TrainingOps#adamw} (the fused PyTorch-AdamW op that facm.training.AdamW also uses). It exists beside that
 * class because AdamW is built over a LightningDiT's parameter table and a fixed learning rate, and the classifier
 * needs its own tensors and a learning rate per step (warm-up, cosine). Decoupled weight decay applies to the matrices
 * only; norm weights and biases are not decayed (the usual ViT recipe).
 */
final class ClassifierOptimizer implements AutoCloseable {
    static final float BETA1 = 0.9f;
    static final float BETA2 = 0.999f;
    static final float EPS = 1e-8f;

    private final ClassifierWeights weights;
    private final TrainingOps ops;
    private final float weightDecay;
    private final Map<String, Tensor> grads = new LinkedHashMap<>();
    private final Map<String, Tensor> m = new LinkedHashMap<>();
    private final Map<String, Tensor> v = new LinkedHashMap<>();
    private int step;

    ClassifierOptimizer(ClassifierWeights weights, float weightDecay) {
        this.weights = weights;
        this.ops = weights.backend().training();
        this.weightDecay = weightDecay;
        Backend be = weights.backend();
        try {
            for (Map.Entry<String, Tensor> e : weights.asMap().entrySet()) {
                int[] shape = e.getValue().shape();
                grads.put(e.getKey(), be.zeros(DType.F32, shape));
                m.put(e.getKey(), be.zeros(DType.F32, shape));
                v.put(e.getKey(), be.zeros(DType.F32, shape));
            }
        } catch (RuntimeException ex) {
            close();
            throw ex;
        }
    }

    /** A tape whose parameters are the classifier's tensors, accumulating into this optimizer's (zeroed) buffers. */
    Tape newTape() {
        Backend be = weights.backend();
        for (Tensor g : grads.values()) {
            be.fill(g, 0f);
        }
        Tape tape = new Tape(be);
        for (Map.Entry<String, Tensor> e : weights.asMap().entrySet()) {
            tape.trackParameter(e.getValue(), grads.get(e.getKey()));
        }
        return tape;
    }

    /** √(Σ g²) over every gradient buffer (one read-back). */
    double gradientNorm() {
        Backend be = weights.backend();
        try (Tensor acc = be.zeros(DType.F32, 1)) {
            for (Tensor g : grads.values()) {
                ops.sumOfSquares(g, acc);
            }
            return Math.sqrt(be.download(acc)[0]);
        }
    }

    /** One AdamW update of every tensor with learning rate {@code lr} and the gradients times {@code gradScale}. */
    void update(float lr, float gradScale) {
        int next = Math.addExact(step, 1);
        for (Map.Entry<String, Tensor> e : weights.asMap().entrySet()) {
            String key = e.getKey();
            float decay = e.getValue().rank() >= 2 ? weightDecay : 0f;
            ops.adamw(e.getValue(), grads.get(key), m.get(key), v.get(key), lr, BETA1, BETA2, EPS, decay, next,
                    gradScale);
        }
        step = next;
    }

    /** The gradient buffer of tensor {@code key} (after a backward on {@link #newTape()}'s tape). */
    Tensor gradient(String key) {
        Tensor g = grads.get(key);
        if (g == null) {
            throw new IllegalArgumentException("no gradient for classifier tensor '" + key + "'");
        }
        return g;
    }

    int step() {
        return step;
    }

    @Override
    public void close() {
        for (Map<String, Tensor> map : java.util.List.of(grads, m, v)) {
            map.values().forEach(Tensor::close);
            map.clear();
        }
    }
}
