package facm.port;

import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.List;

import static facm.port.KernelFamilies.FP32_TOL;
import static facm.port.KernelFamilies.row;

/**
 * The port-check rows of {@link TrainingOps}: losses with their gradients, the norm reduction, AdamW, and the
 * multi-tensor (foreach) forms of AdamW, the EMA and the norm reduction the optimizer uses.
 */
final class TrainingFamilies {
    private TrainingFamilies() {
    }

    static List<KernelFamily> all() {
        return List.of(
                row("flow_loss", Pass.FORWARD, "", DType.F32, "loss", Variant.REDUCTION, FP32_TOL, null, (in, d) -> {
                    int[] img = {d.batch(), d.channels(), d.image(), d.image()};
                    Tensor pred = in.f32("pred", -2f, 2f, img);
                    Tensor target = in.f32("target", -2f, 2f, img);
                    Tensor perSample = in.out("perSample", d.batch());
                    Tensor grad = in.out("gradPred", img);
                    return Prepared.of(() -> training(in).flowMatchingLoss(pred, target, perSample, grad,
                            1f / d.batch()), perSample, grad);
                }),
                consistency("facm", 1f, 0f, 0.5f),
                consistency("scm-norm", 0f, 1e-3f, 0f),
                row("cross_entropy", Pass.FORWARD, "", DType.F32, "loss", Variant.ROWS, FP32_TOL, null, (in, d) -> {
                    Tensor logits = in.f32("logits", -4f, 4f, d.rows(), d.classes());
                    Tensor labels = in.ints("labels", d.classes(), d.rows());
                    Tensor perSample = in.out("perSample", d.rows());
                    Tensor grad = in.out("gradLogits", d.rows(), d.classes());
                    return Prepared.of(() -> training(in).softmaxCrossEntropy(logits, labels, perSample, grad,
                            1f / d.rows()), perSample, grad);
                }),
                row("sum_of_squares", Pass.FORWARD, "", DType.F32, "loss", Variant.REDUCTION, FP32_TOL, null, (in, d) -> {
                    Tensor x = in.f32("x", -1f, 1f, d.rows(), d.width());
                    Tensor acc = in.accumulator("acc", 1);
                    return Prepared.of(() -> training(in).sumOfSquares(x, acc), acc);
                }),
                row("adamw", Pass.FORWARD, "", DType.F32, "adamw", Variant.SIMT, FP32_TOL, null, (in, d) -> {
                    Tensor p = in.f32("param", -1f, 1f, d.width(), d.hidden());
                    Tensor g = in.f32("grad", -1f, 1f, d.width(), d.hidden());
                    Tensor m = in.f32("m", -0.1f, 0.1f, d.width(), d.hidden());
                    Tensor v = in.f32("v", 1e-4f, 0.1f, d.width(), d.hidden());
                    return Prepared.of(() -> training(in).adamw(p, g, m, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3,
                            0.5f), p, m, v);
                }),
                row("adamw", Pass.FORWARD, "foreach", DType.F32, "adamw", Variant.SIMT, FP32_TOL, null, (in, d) -> {
                    Group p = group(in, "param", -1f, 1f, d), g = group(in, "grad", -1f, 1f, d);
                    Group m = group(in, "m", -0.1f, 0.1f, d), v = group(in, "v", 1e-4f, 0.1f, d);
                    return Prepared.of(() -> training(in).adamwForeach(p.list(), g.list(), m.list(), v.list(), 1e-3f,
                            0.9f, 0.999f, 1e-8f, 0.01f, 3, 0.5f), concat(p, m, v));
                }),
                row("ema", Pass.FORWARD, "foreach", DType.F32, "adamw", Variant.SIMT, FP32_TOL, null, (in, d) -> {
                    Group avg = group(in, "average", -1f, 1f, d), theta = group(in, "theta", -1f, 1f, d);
                    return Prepared.of(() -> training(in).emaUpdateForeach(avg.list(), theta.list(), 0.9),
                            concat(avg));
                }),
                row("sum_of_squares", Pass.FORWARD, "foreach", DType.F32, "adamw", Variant.REDUCTION, FP32_TOL, null,
                        (in, d) -> {
                    Group x = group(in, "x", -1f, 1f, d);
                    Tensor acc = in.accumulator("acc", 1);
                    return Prepared.of(() -> training(in).sumOfSquaresForeach(x.list(), acc), acc);
                }));
    }

    /**
     * Three tensors of unlike sizes, as the multi-tensor (foreach) launches see a model's parameters: a weight matrix,
     * an odd-sized vector and a bias-like vector.
     */
    private record Group(Tensor weight, Tensor odd, Tensor bias) {
        List<Tensor> list() {
            return List.of(weight, odd, bias);
        }
    }

    private static Group group(CaseInputs in, String name, float lo, float hi, Dims d) {
        return new Group(in.f32(name + ".weight", lo, hi, d.width(), d.hidden()), in.f32(name + ".odd", lo, hi, 37),
                in.f32(name + ".bias", lo, hi, d.hidden()));
    }

    private static Tensor[] concat(Group... groups) {
        return java.util.Arrays.stream(groups).flatMap(g -> g.list().stream()).toArray(Tensor[]::new);
    }

    /** FACM (clip 1, weight power 0.5) and sCM-style (no clip, tangent normalization, no adaptive weight). */
    private static KernelFamily consistency(String tag, float clip, float normEps, float weightPower) {
        return row("consistency_loss", Pass.FORWARD, tag, DType.F32, "loss", Variant.REDUCTION, FP32_TOL, null,
                (in, d) -> {
            int[] img = {d.batch(), d.channels(), d.image(), d.image()};
            Tensor pred = in.f32("pred", -2f, 2f, img);
            Tensor tangent = in.f32("tangent", -2f, 2f, img);
            Tensor velocity = in.f32("velocity", -2f, 2f, img);
            Tensor coefs = in.f32("coefs", 0.05f, 1f, d.batch(), 3);
            Tensor perSample = in.out("perSample", d.batch());
            Tensor grad = in.out("gradPred", img);
            return Prepared.of(() -> training(in).consistencyLoss(pred, tangent, velocity, coefs, clip, normEps,
                    weightPower, 1e-3f, perSample, grad, 1f / d.batch()), perSample, grad);
        });
    }

    private static TrainingOps training(CaseInputs in) {
        return in.backend().training();
    }
}
