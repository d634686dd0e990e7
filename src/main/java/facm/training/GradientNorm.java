package facm.training;

import facm.autograd.Gradients;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.List;

/**
 * The global L2 norm of all parameter gradients, as {@code torch.nn.utils.clip_grad_norm_} computes it: every
 * gradient's sum of squares accumulates into ONE device scalar ({@link TrainingOps#sumOfSquaresForeach}: the gradients
 * in table order, three launches on CUDA), which is read back once per step (the only host read of the step besides
 * the loss; it decides whether to skip and how much to clip).
 */
public final class GradientNorm implements AutoCloseable {
    /** PyTorch's clip_grad_norm_ adds this to the norm before dividing. */
    static final double CLIP_EPS = 1e-6;

    private final Backend backend;
    private final TrainingOps ops;
    private final Tensor accumulator;

    public GradientNorm(Backend backend, TrainingOps ops) {
        this.backend = backend;
        this.ops = ops;
        this.accumulator = backend.zeros(DType.F32, 1);
    }

    /** √(Σ over all gradients of Σ g²); NaN or infinite when any gradient is. */
    public double compute(Gradients grads) {
        backend.fill(accumulator, 0f);
        ops.sumOfSquaresForeach(List.copyOf(grads.asMap().values()), accumulator);
        return Math.sqrt(backend.download(accumulator)[0]);
    }

    /**
     * The device form (no host read; a captured step uses it): Σ g² over all gradients into the accumulator, then
     * {@code control} (F32 [TrainingOps.CONTROL_SIZE]) = clip factor and skip flag from it and the step's loss (F32
     * [1] on the device), as {@link TrainingOps#stepControl}. The norm is read only when asked ({@link #lastNorm}).
     */
    public void computeOnDevice(Gradients grads, Tensor loss, float maxNorm, Tensor control) {
        backend.fill(accumulator, 0f);
        ops.sumOfSquaresForeach(List.copyOf(grads.asMap().values()), accumulator);
        ops.stepControl(accumulator, loss, maxNorm, control);
    }

    /** The Σ g² (F32 [1]) of the last {@link #computeOnDevice}, for the device step log. */
    Tensor sumOfSquares() {
        return accumulator;
    }

    /** The norm of the last {@link #computeOnDevice} (one synchronizing read: for log steps). */
    public double lastNorm() {
        return Math.sqrt(backend.download(accumulator)[0]);
    }

    /**
     * The factor the gradients are multiplied by: min(1, maxNorm / (norm + 1e-6)) as in clip_grad_norm_, or 1 when
     * clipping is off ({@code maxNorm <= 0}). Only meaningful for a finite norm.
     */
    public static float clipFactor(double norm, double maxNorm) {
        if (maxNorm <= 0) {
            return 1f;
        }
        return (float) Math.min(1.0, maxNorm / (norm + CLIP_EPS));
    }

    @Override
    public void close() {
        accumulator.close();
    }
}
