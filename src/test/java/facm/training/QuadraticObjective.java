package facm.training;

import facm.autograd.Gradients;
import facm.data.Batch;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.Map;
import java.util.Set;
import java.util.function.LongConsumer;

/**
 * A stand-in objective for loop tests: L = Σ_k ½·mean_i (θ_k,i − c)² over the trainable tensors, with a target
 * c = 0.1·(batch mean) + 0.01·Philox noise of (seed, step), so the loss depends on the data order and the step like a
 * real objective. Gradient: (θ_k − c)/n_k, accumulated. Steps listed in {@code nanSteps} return NaN (gradients left
 * untouched); {@code onStep} runs at the start of every step (e.g. to request a stop).
 */
final class QuadraticObjective implements Objective {
    private final TrainingOps ops;
    private final long seed;
    private final Set<Long> nanSteps;
    private final LongConsumer onStep;
    private double lastTarget;

    QuadraticObjective(TrainingOps ops, long seed, Set<Long> nanSteps, LongConsumer onStep) {
        this.ops = ops;
        this.seed = seed;
        this.nanSteps = nanSteps;
        this.onStep = onStep;
    }

    QuadraticObjective(TrainingOps ops, long seed) {
        this(ops, seed, Set.of(), s -> { });
    }

    @Override
    public String name() {
        return "quadratic";
    }

    @Override
    public float lossAndGradients(ModelWeights weights, Gradients grads, Batch batch, long step) {
        onStep.accept(step);
        if (nanSteps.contains(step)) {
            return Float.NaN;
        }
        double mean = 0;
        for (float v : batch.images()) {
            mean += v;
        }
        mean /= batch.images().length;
        float c = (float) (0.1 * mean + 0.01 * Philox.normal(seed, step));
        lastTarget = c;
        Backend be = weights.backend();
        double loss = 0;
        try (Tensor acc = be.zeros(DType.F32, 1)) {
            for (Map.Entry<String, Tensor> e : grads.asMap().entrySet()) {
                Tensor theta = weights.get(e.getKey());
                float inv = 1f / theta.numel();
                try (Tensor diff = be.empty(DType.F32, theta.shape())) {
                    be.affine(theta, 1f, -c, diff);
                    be.axpby(1f, e.getValue(), inv, diff, e.getValue());
                    be.fill(acc, 0f);
                    ops.sumOfSquares(diff, acc);
                    loss += 0.5 * be.download(acc)[0] * inv;
                }
            }
        }
        return (float) loss;
    }

    @Override
    public Map<String, Double> lastMetrics() {
        return Map.of("target", lastTarget);
    }
}
