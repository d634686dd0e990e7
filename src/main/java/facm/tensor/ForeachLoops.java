package facm.tensor;

import java.util.Arrays;
import java.util.List;

/**
 * The bodies of {@link TrainingOps}' foreach defaults: each foreach form is its per-tensor op applied to the tensors in
 * list order (element i of every list belongs together), which these loops do through the given ops, so a backend's
 * own per-tensor ops are the ones called. The CUDA backend overrides the foreach forms with one launch per phase.
 */
final class ForeachLoops {
    private ForeachLoops() {
    }

    /**
     * {@link TrainingOps#adamw(Tensor, Tensor, Tensor, Tensor, float, float, float, float, float, int, float)} per
     * tensor.
     */
    static void adamw(TrainingOps ops, List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs,
                      float lr, float beta1, float beta2, float eps, float weightDecay, int step, float gradScale) {
        int n = sameLength("adamwForeach", params, grads, ms, vs);
        for (int i = 0; i < n; i++) {
            ops.adamw(params.get(i), grads.get(i), ms.get(i), vs.get(i), lr, beta1, beta2, eps, weightDecay, step,
                    gradScale);
        }
    }

    /** The device-step {@link TrainingOps#adamw} per tensor (the counter is not advanced). */
    static void adamw(TrainingOps ops, List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs,
                      float lr, float beta1, float beta2, float eps, float weightDecay, Tensor biasCorrections,
                      Tensor counter, Tensor control) {
        int n = sameLength("adamwForeach", params, grads, ms, vs);
        for (int i = 0; i < n; i++) {
            ops.adamw(params.get(i), grads.get(i), ms.get(i), vs.get(i), lr, beta1, beta2, eps, weightDecay,
                    biasCorrections, counter, control);
        }
    }

    /** The host-scalar EMA update per tensor pair (see {@link TrainingOps#emaUpdateForeach(List, List, double)}). */
    static void emaUpdate(List<Tensor> averages, List<Tensor> thetas, double decay) {
        int n = sameLength("emaUpdateForeach", averages, thetas);
        for (int i = 0; i < n; i++) {
            Tensor avg = averages.get(i), theta = thetas.get(i);
            if (decay == 0) {
                avg.backend().copy(theta, avg);
            } else {
                avg.backend().axpby((float) decay, avg, (float) (1.0 - decay), theta, avg);
            }
        }
    }

    /** The device-step {@link TrainingOps#emaUpdate} per tensor pair (the counter is not advanced). */
    static void emaUpdate(TrainingOps ops, List<Tensor> averages, List<Tensor> thetas, Tensor decays, Tensor counter,
                          Tensor control) {
        int n = sameLength("emaUpdateForeach", averages, thetas);
        for (int i = 0; i < n; i++) {
            ops.emaUpdate(averages.get(i), thetas.get(i), decays, counter, control);
        }
    }

    /** {@link TrainingOps#sumOfSquares} per tensor, in list order, into one accumulator. */
    static void sumOfSquares(TrainingOps ops, List<Tensor> xs, Tensor acc) {
        for (Tensor x : xs) {
            ops.sumOfSquares(x, acc);
        }
    }

    /** Every tensor (F32) filled with 0 ({@link Backend#fill}). */
    static void zero(List<Tensor> tensors) {
        for (Tensor t : tensors) {
            t.backend().fill(t, 0f);
        }
    }

    /** The common length of lists that go together, or an error naming the op and the lengths. */
    private static int sameLength(String op, List<?>... lists) {
        for (List<?> l : lists) {
            if (l.size() != lists[0].size()) {
                throw new IllegalArgumentException(op + ": tensor lists of different lengths "
                        + Arrays.stream(lists).map(List::size).toList());
            }
        }
        return lists[0].size();
    }
}
