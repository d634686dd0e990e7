package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.port.Tuning;
import facm.tensor.ConsistencyDraws;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;
import facm.tensor.TrainingChecks;
import facm.tensor.TrainingOps;

import java.util.List;
import java.util.Objects;

import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.F64;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/**
 * Losses and optimizer steps on the GPU (contract {@link TrainingOps}): the flow-matching, consistency and softmax
 * cross-entropy losses with their gradients (kernels/loss.cu), the sum of squares behind global gradient-norm
 * clipping and the fused AdamW step (kernels/adamw.cu). Every op queues its kernels on the device's main stream and
 * returns; only the caller's read-back of the accumulated squared norm synchronizes, and the cross-entropy's check of
 * its labels.
 *
 * <p>Numerics, against the CPU reference (facm.backend.cpu.CpuTrainingOps, same argument rules and messages): AdamW
 * and the flow-matching gradient are bit-identical to it (the same fp64 operations in the same order); the per-sample
 * losses, the consistency gradient (scaled by a per-sample sum), the cross-entropy (fp64 exp/log of the device
 * library) and the sum of squares come from fp64 sums in a different but fixed order, so they may differ from the
 * CPU's in the last bit or two of the fp32 result. Every result is bit-identical from run to run. The only state kept
 * between calls is the 8 KiB of fp64 block partials of {@link #sumOfSquares}.
 */
public final class CudaTrainingOps implements TrainingOps, AutoCloseable {
    private static final int LOSS_THREADS = 256;
    private static final int SUM_THREADS = 256;
    /** Elements per thread before sumOfSquares uses another block, and the cap on blocks (= fp64 partials). */
    private static final int SUM_ELEMENTS_PER_THREAD = 8;
    private static final int SUM_MAX_BLOCKS = 1024;
    private static final int ELEMENTWISE_BLOCK = 256;
    /** AdamW's block size (tuning table "adamw.fwd block"; a grid-stride kernel without launch bounds). */
    private final int adamwBlock;
    /** Rows (one warp each) per block of softmax_cross_entropy_f32; must match CE_ROWS_PER_BLOCK in loss.cu. */
    private static final int CE_ROWS_PER_BLOCK = 8;

    private final CudaBackend backend;
    private final CudaStream stream;
    private final ScratchBuffer scratch;
    private final Kernel loss;
    private final Kernel consistency;
    private final Kernel sumPartial;
    private final Kernel sumFinish;
    private final Kernel adamw;
    private final Kernel crossEntropy;
    /** Clip, skip and counters on the device, and the AdamW/EMA forms that read them (kernels/adamw.cu). */
    private final CudaStepControl stepControl;
    /** The per-step inputs and the step log (kernels/step_inputs.cu, step_log.cu). */
    private final CudaStepKernels step;
    /** The pinned staging of {@link #copyIn}. */
    private final PinnedCopyIn pinned;
    /** The multi-tensor forms (one launch per optimizer phase) and their tables. */
    private final CudaForeach foreach;

    public CudaTrainingOps(CudaBackend backend) {
        this.backend = Objects.requireNonNull(backend, "CudaTrainingOps: backend is null");
        this.stream = backend.cudaDevice().stream();
        this.scratch = new ScratchBuffer(backend.cudaDevice().arena(), "training ops");
        KernelLibrary lib = backend.cudaDevice().kernels();
        adamwBlock = Tuning.current().intValue("adamw.fwd", "block", lib.computeCapability(), ELEMENTWISE_BLOCK);
        loss = lib.kernel("flow_matching_loss_f32", PTR, PTR, PTR, PTR, I32, I32, I32, F32);
        consistency = lib.kernel("consistency_loss_f32", PTR, PTR, PTR, PTR, PTR, PTR, I32, I64, F32, F32, F32, F32,
                F32);
        sumPartial = lib.kernel("sum_squares_partial", PTR, I64, PTR, PTR);
        sumFinish = lib.kernel("sum_squares_finish", PTR, I32, PTR);
        adamw = lib.kernel("adamw_f32", PTR, PTR, PTR, PTR, I64, F32, F32, F32, F32, F32, F64, F64, F32);
        crossEntropy = lib.kernel("softmax_cross_entropy_f32", PTR, PTR, PTR, PTR, I32, I32, F32);
        stepControl = new CudaStepControl(backend, lib, stream, adamwBlock);
        step = new CudaStepKernels(backend, lib, stream);
        pinned = new PinnedCopyIn(backend.cudaDevice(), stream);
        foreach = new CudaForeach(backend, lib, stream);
    }

    @Override
    public void flowMatchingLoss(Tensor pred, Tensor target, Tensor perSample, Tensor gradPred, float gradScale) {
        String op = "flowMatchingLoss";
        TrainingChecks.flowMatchingLoss(pred, target, perSample, gradPred, gradScale);
        CudaTensor p = f32(op, "pred", pred);
        CudaTensor u = f32(op, "target", target);
        CudaTensor l = f32(op, "perSample", perSample);
        int b = p.dim(0), c = p.dim(1);
        long pixels = (long) p.dim(2) * p.dim(3);
        CudaTensor g = gradPred == null ? null : f32(op, "gradPred", gradPred);
        if (b == 0) {
            return;
        }
        if ((long) c * pixels > Integer.MAX_VALUE) {
            throw new ShapeException(op + ": pred " + p.describe() + " has more than 2^31 values per sample");
        }
        loss.launch(stream, Math.min(b, CudaNetworkOps.MAX_GRID), 1, 1, LOSS_THREADS, 1, 1, 0, p.address(),
                u.address(), l.address(), g == null ? 0L : g.address(), b, c, (int) pixels, gradScale);
    }

    /**
     * One block of {@code LOSS_THREADS} per sample (kernels/loss.cu consistency_loss_f32): fp64 inside with the CPU's
     * operation order, so Δ is bit-identical to the CPU's and L_b, gradPred differ from it only through the sums'
     * order (last fp32 bit).
     */
    @Override
    public void consistencyLoss(Tensor pred, Tensor tangent, Tensor velocity, Tensor coefs, float clip,
                                float normEps, float weightPower, float weightEps, Tensor perSample, Tensor gradPred,
                                float gradScale) {
        String op = "consistencyLoss";
        TrainingChecks.consistencyLoss(pred, tangent, velocity, coefs, clip, normEps, weightPower, weightEps,
                perSample, gradPred, gradScale);
        CudaTensor f = f32(op, "pred", pred);
        CudaTensor t = f32(op, "tangent", tangent);
        CudaTensor v = f32(op, "velocity", velocity);
        CudaTensor c = f32(op, "coefs", coefs);
        CudaTensor l = f32(op, "perSample", perSample);
        CudaTensor g = gradPred == null ? null : f32(op, "gradPred", gradPred);
        int b = f.dim(0);
        if (b == 0) {
            return;
        }
        long n = f.numel() / b;
        consistency.launch(stream, Math.min(b, CudaNetworkOps.MAX_GRID), 1, 1, LOSS_THREADS, 1, 1, 0, f.address(),
                t.address(), v.address(), c.address(), l.address(), g == null ? 0L : g.address(), b, n, clip,
                normEps, weightPower, weightEps, gradScale);
    }

    /**
     * One warp per row (kernels/loss.cu). The labels are read back and checked first: a device-side check could
     * only poison the outputs, and the message should name the row. That copy ({@code 4·B} bytes) waits for the
     * queued work, which a training step does anyway when it reads its loss.
     */
    @Override
    public void softmaxCrossEntropy(Tensor logits, Tensor labels, Tensor perSample, Tensor gradLogits,
                                    float gradScale) {
        String op = "softmaxCrossEntropy";
        TrainingChecks.softmaxCrossEntropy(logits, labels, perSample, gradLogits, gradScale);
        CudaTensor z = f32(op, "logits", logits);
        Objects.requireNonNull(labels, () -> op + ": labels is null");
        CudaTensor y = backend.require(op + " labels", labels);
        Shapes.requireDType(op + ": labels", y, DType.I32);
        CudaTensor l = f32(op, "perSample", perSample);
        CudaTensor g = gradLogits == null ? null : f32(op, "gradLogits", gradLogits);
        int b = z.dim(0), k = z.dim(1);
        if (b == 0) {
            return;
        }
        TrainingChecks.labelsInRange(op, backend.downloadInts(y), k, logits);
        int blocks = (int) Math.min((b + CE_ROWS_PER_BLOCK - 1L) / CE_ROWS_PER_BLOCK, CudaNetworkOps.MAX_GRID);
        crossEntropy.launch(stream, blocks, 1, 1, 32, CE_ROWS_PER_BLOCK, 1, 0, z.address(), y.address(),
                l.address(), g == null ? 0L : g.address(), b, k, gradScale);
    }

    @Override
    public void sumOfSquares(Tensor x, Tensor acc) {
        String op = "sumOfSquares";
        TrainingChecks.sumOfSquares(x, acc);
        CudaTensor in = f32(op, "x", x);
        CudaTensor a = f32(op, "acc", acc);
        long n = in.numel();
        if (n == 0) {
            return;
        }
        int blocks = sumBlocks(n);
        long partials = blocks == 1 ? 0L : scratch.regions(op, (long) SUM_MAX_BLOCKS * Double.BYTES)[0];
        sumPartial.launch(stream, blocks, 1, 1, SUM_THREADS, 1, 1, 0, in.address(), n, partials, a.address());
        if (blocks > 1) {
            sumFinish.launch(stream, 1, 1, 1, SUM_THREADS, 1, 1, 0, partials, blocks, a.address());
        }
    }

    /** Blocks of sum_squares_partial for n elements: from n alone, so the summation order depends on the shape only. */
    static int sumBlocks(long n) {
        long perBlock = (long) SUM_THREADS * SUM_ELEMENTS_PER_THREAD;
        return (int) Math.max(1, Math.min(SUM_MAX_BLOCKS, (n + perBlock - 1) / perBlock));
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                      float weightDecay, int step, float gradScale) {
        String op = "adamw";
        TrainingChecks.adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        CudaTensor p = f32(op, "param", param);
        CudaTensor g = f32(op, "grad", grad);
        CudaTensor ms = f32(op, "m", m);
        CudaTensor vs = f32(op, "v", v);
        if (p.numel() == 0) {
            return;
        }
        // Bias corrections in fp64 on the host, with the CPU reference's very expression (the kernel is bit-identical
        // to it).
        double bc1 = 1.0 - Math.pow(beta1, step);
        double bc2 = 1.0 - Math.pow(beta2, step);
        adamw.launch1d(stream, p.numel(), adamwBlock, p.address(), g.address(), ms.address(), vs.address(),
                p.numel(), lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale);
    }

    // ---------------------------------------------------------------- device step control (CudaStepControl)

    /** One thread; bit-identical to the reference default (fp64 √ and ÷ correctly rounded on both sides). */
    @Override
    public void stepControl(Tensor sumSquares, Tensor loss, float maxNorm, Tensor control) {
        stepControl.stepControl(sumSquares, loss, maxNorm, control);
    }

    /** The AdamW kernel reading gradScale, the step and the skip flag on the device (no host read: capturable). */
    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                      float weightDecay, Tensor biasCorrections, Tensor counter, Tensor control) {
        stepControl.adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, biasCorrections, counter, control);
    }

    @Override
    public void emaUpdate(Tensor average, Tensor theta, Tensor decays, Tensor counter, Tensor control) {
        stepControl.emaUpdate(average, theta, decays, counter, control);
    }

    @Override
    public void advanceCounter(Tensor counter, Tensor control) {
        stepControl.advanceCounter(counter, control);
    }

    // ---------------------------------------------------------------- foreach forms (CudaForeach)

    @Override
    public void adamwForeach(List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs, float lr,
                             float beta1, float beta2, float eps, float weightDecay, int step, float gradScale) {
        foreach.adamw(params, grads, ms, vs, lr, beta1, beta2, eps, weightDecay, step, gradScale);
    }

    @Override
    public void adamwForeach(List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs, float lr,
                             float beta1, float beta2, float eps, float weightDecay, Tensor biasCorrections,
                             Tensor counter, Tensor control) {
        stepControl.adamwForeach(foreach, params, grads, ms, vs, lr, beta1, beta2, eps, weightDecay,
                biasCorrections, counter, control);
    }

    @Override
    public void emaUpdateForeach(List<Tensor> averages, List<Tensor> thetas, double decay) {
        foreach.emaUpdate(averages, thetas, decay);
    }

    @Override
    public void emaUpdateForeach(List<Tensor> averages, List<Tensor> thetas, Tensor decays, Tensor counter,
                                 Tensor control) {
        stepControl.emaUpdateForeach(foreach, averages, thetas, decays, counter, control);
    }

    @Override
    public void sumOfSquaresForeach(List<Tensor> xs, Tensor acc) {
        foreach.sumOfSquares(xs, acc, f32("sumOfSquaresForeach", "acc", acc).address());
    }

    @Override
    public void zeroForeach(List<Tensor> tensors) {
        foreach.zero(tensors);
    }

    // ---------------------------------------------------------------- per-step inputs (kernels/step_inputs.cu)

    @Override
    public void consistencyDraws(ConsistencyDraws d, Tensor stepState, int first, Tensor t, Tensor r, Tensor coefs,
                                 Tensor y, Tensor yUnguided) {
        step.consistencyDraws(d, stepState, first, t, r, coefs, y, yUnguided);
    }

    @Override
    public void consistencyNoise(Tensor stepState, long offset, Tensor x1, Tensor t, Tensor eps, Tensor u,
                                 Tensor xt) {
        step.consistencyNoise(stepState, offset, x1, t, eps, u, xt);
    }

    @Override
    public void advanceStepState(Tensor stepState) {
        step.advanceStepState(stepState);
    }

    @Override
    public void stepLoss(Tensor term0, Tensor term1, Tensor loss, Tensor stepLog, Tensor logCount) {
        step.stepLoss(term0, term1, loss, stepLog, logCount);
    }

    @Override
    public void stepLogEnd(Tensor sumSquares, Tensor control, Tensor stepLog, Tensor logCount) {
        step.stepLogEnd(sumSquares, control, stepLog, logCount);
    }

    /** Through a pinned staging buffer kept per destination: one asynchronous copy, no allocation after the first. */
    @Override
    public void copyIn(float[] host, Tensor dst) {
        pinned.copyIn(host, shaped("copyIn", "dst", dst, DType.F32, dst.shape()));
    }

    @Override
    public void copyIn(int[] host, Tensor dst) {
        pinned.copyIn(host, shaped("copyIn", "dst", dst, DType.I32, dst.shape()));
    }

    /** Returns the partials buffer and the foreach tables to the device arena, frees the pinned staging; the ops stay usable. */
    @Override
    public void close() {
        scratch.close();
        pinned.close();
        foreach.close();
    }

    // ---------------------------------------------------------------- checks

    private CudaTensor shaped(String op, String role, Tensor t, DType dtype, int... shape) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, dtype);
        Shapes.requireShape(op + ": " + role, c, shape);
        return c;
    }

    private CudaTensor f32(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, DType.F32);
        return c;
    }

}
