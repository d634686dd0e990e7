package facm.tensor;

import java.util.Objects;

/**
 * The argument rules of {@link TrainingOps}, written once for every backend: shapes, storage sharing and
 * hyper-parameter ranges. Backends call these before converting the tensors to their own type (which checks ownership
 * and dtype).
 */
public final class TrainingChecks {
    private TrainingChecks() {
    }

    /** flowMatchingLoss: pred/target [B,C,H,W] alike, perSample [B], non-empty planes, outputs apart from inputs. */
    public static void flowMatchingLoss(Tensor pred, Tensor target, Tensor perSample, Tensor gradPred, float gradScale) {
        String op = "flowMatchingLoss";
        nonNull(op, "pred", pred);
        nonNull(op, "target", target);
        nonNull(op, "perSample", perSample);
        Shapes.requireRank(op, "pred [B,C,H,W]", pred, 4);
        Shapes.requireSame(op + " (target vs pred)", target, pred);
        Shapes.requireShape(op + ": perSample [B] for pred " + pred.describe(), perSample, pred.dim(0));
        if (pred.dim(1) == 0 || (long) pred.dim(2) * pred.dim(3) == 0) {
            throw new ShapeException(op + ": pred " + pred.describe() + " has no channels or no pixels to average over");
        }
        Shapes.requireNoSharing(op, perSample, pred, target);
        if (gradPred != null) {
            Shapes.requireSame(op + " (gradPred vs pred)", gradPred, pred);
            Shapes.requireNoSharing(op, gradPred, pred, target, perSample);
            if (!Float.isFinite(gradScale)) {
                throw new IllegalArgumentException(op + ": gradScale must be finite, got " + gradScale);
            }
        }
    }

    /**
     * consistencyLoss: pred/tangent/velocity (and gradPred) F32 of one shape {@code [B,...]} (rank ≥ 2, non-empty
     * samples), coefs F32 {@code [B,3]}, perSample F32 {@code [B]}, outputs apart from every input and from each other;
     * clip not NaN (≤ 0 or infinite turns the clip off), finite normEps, weightPower, weightEps and gradScale, and
     * weightEps &gt; 0 whenever weightPower ≠ 0 (so (e + weightEps)^weightPower is finite at e = 0).
     */
    public static void consistencyLoss(Tensor pred, Tensor tangent, Tensor velocity, Tensor coefs, float clip,
                                       float normEps, float weightPower, float weightEps, Tensor perSample,
                                       Tensor gradPred, float gradScale) {
        String op = "consistencyLoss";
        nonNull(op, "pred", pred);
        nonNull(op, "tangent", tangent);
        nonNull(op, "velocity", velocity);
        nonNull(op, "coefs", coefs);
        nonNull(op, "perSample", perSample);
        Shapes.requireDType(op + ": pred", pred, DType.F32);
        Shapes.requireDType(op + ": tangent", tangent, DType.F32);
        Shapes.requireDType(op + ": velocity", velocity, DType.F32);
        Shapes.requireDType(op + ": coefs", coefs, DType.F32);
        Shapes.requireDType(op + ": perSample", perSample, DType.F32);
        if (pred.rank() < 2) {
            throw new ShapeException(op + ": pred " + pred.describe() + " should be [B,...] with rank >= 2");
        }
        Shapes.requireSame(op + " (tangent vs pred)", tangent, pred);
        Shapes.requireSame(op + " (velocity vs pred)", velocity, pred);
        int b = pred.dim(0);
        if (b > 0 && pred.numel() == 0) {
            throw new ShapeException(op + ": pred " + pred.describe() + " has no elements per sample to average over");
        }
        Shapes.requireShape(op + ": coefs [B,3] (k, alpha, beta) for pred " + pred.describe(), coefs, b, 3);
        Shapes.requireShape(op + ": perSample [B] for pred " + pred.describe(), perSample, b);
        Shapes.requireNoSharing(op, perSample, pred, tangent, velocity, coefs);
        if (gradPred != null) {
            Shapes.requireDType(op + ": gradPred", gradPred, DType.F32);
            Shapes.requireSame(op + " (gradPred vs pred)", gradPred, pred);
            Shapes.requireNoSharing(op, gradPred, pred, tangent, velocity, coefs, perSample);
        }
        if (Float.isNaN(clip)) {
            throw new IllegalArgumentException(op + ": clip is NaN (use 0 or infinity for no clip)");
        }
        finite(op, "normEps", normEps);
        finite(op, "weightPower", weightPower);
        finite(op, "weightEps", weightEps);
        if (weightPower != 0 && !(weightEps > 0)) {
            throw new IllegalArgumentException(op + ": weightEps must be > 0 when weightPower is " + weightPower
                    + " (else e = 0 divides by 0), got " + weightEps);
        }
        finite(op, "gradScale", gradScale);
    }

    /** sumOfSquares: acc holds one element and is not x. */
    public static void sumOfSquares(Tensor x, Tensor acc) {
        String op = "sumOfSquares";
        nonNull(op, "x", x);
        nonNull(op, "acc", acc);
        if (acc.numel() != 1) {
            throw new ShapeException(op + ": acc " + acc.describe() + " should hold one element");
        }
        Shapes.requireNoSharing(op, acc, x);
    }

    /** adamw: four tensors of one shape in separate storage; lr, betas, eps, weight decay in range; step from 1. */
    public static void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2,
                             float eps, float weightDecay, int step, float gradScale) {
        String op = "adamw";
        nonNull(op, "param", param);
        nonNull(op, "grad", grad);
        nonNull(op, "m", m);
        nonNull(op, "v", v);
        Shapes.requireSame(op + " (grad vs param)", grad, param);
        Shapes.requireSame(op + " (m vs param)", m, param);
        Shapes.requireSame(op + " (v vs param)", v, param);
        Shapes.requireNoSharing(op, param, grad, m, v);
        Shapes.requireNoSharing(op, m, grad, v);
        Shapes.requireNoSharing(op, v, grad);
        hyperparameter(op, "lr", lr, lr >= 0, ">= 0");
        hyperparameter(op, "beta1", beta1, beta1 >= 0 && beta1 < 1, "in [0, 1)");
        hyperparameter(op, "beta2", beta2, beta2 >= 0 && beta2 < 1, "in [0, 1)");
        hyperparameter(op, "eps", eps, eps >= 0, ">= 0");
        hyperparameter(op, "weightDecay", weightDecay, weightDecay >= 0, ">= 0");
        hyperparameter(op, "gradScale", gradScale, true, "any value");
        if (step < 1) {
            throw new IllegalArgumentException(op + ": step counts from 1, got " + step + " for param "
                    + param.describe());
        }
    }

    private static void nonNull(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
    }

    private static void finite(String op, String name, float value) {
        if (!Float.isFinite(value)) {
            throw new IllegalArgumentException(op + ": " + name + " must be finite, got " + value);
        }
    }

    private static void hyperparameter(String op, String name, float value, boolean inRange, String range) {
        if (!Float.isFinite(value) || !inRange) {
            throw new IllegalArgumentException(op + ": " + name + " must be finite and " + range + ", got " + value);
        }
    }
}
