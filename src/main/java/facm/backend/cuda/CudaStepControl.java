package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;
import facm.tensor.TrainingChecks;

import java.util.List;
import java.util.Objects;

import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;
import static facm.tensor.TrainingOps.CONTROL_SIZE;

/**
 * The device-step part of {@link CudaTrainingOps} (train --cuda-graph-step): the clip factor and skip flag computed on
 * the device (step_control_f32), the AdamW and EMA updates that read them with their step from device counters and
 * fp64 tables (per tensor, and the multi-tensor forms through {@link CudaForeach}), and the counter advance; no host
 * read anywhere, so a step made of them can be captured as a CUDA graph. Kernels in kernels/adamw.cu.
 */
final class CudaStepControl {
    private static final int ELEMENTWISE_BLOCK = 256;

    private final CudaBackend backend;
    private final CudaStream stream;
    private final int adamwBlock;
    private final Kernel stepControl;
    private final Kernel adamwControlled;
    private final Kernel emaControlled;
    private final Kernel counterAdvance;

    CudaStepControl(CudaBackend backend, KernelLibrary lib, CudaStream stream, int adamwBlock) {
        this.backend = backend;
        this.stream = stream;
        this.adamwBlock = adamwBlock;
        stepControl = lib.kernel("step_control_f32", PTR, PTR, F32, PTR);
        adamwControlled = lib.kernel("adamw_controlled_f32", PTR, PTR, PTR, PTR, I64, F32, F32, F32, F32, F32, PTR,
                I32, PTR, PTR);
        emaControlled = lib.kernel("ema_controlled_f32", PTR, PTR, I64, PTR, I32, PTR, PTR);
        counterAdvance = lib.kernel("step_counter_advance", PTR, PTR);
    }

    /** One thread; bit-identical to the reference default (fp64 √ and ÷ correctly rounded on both sides). */
    void stepControl(Tensor sumSquares, Tensor loss, float maxNorm, Tensor control) {
        String op = "stepControl";
        CudaTensor s = scalar(op, "sumSquares", sumSquares, DType.F32, 1);
        CudaTensor l = scalar(op, "loss", loss, DType.F32, 1);
        CudaTensor c = scalar(op, "control", control, DType.F32, CONTROL_SIZE);
        stepControl.launch(stream, 1, 1, 1, 32, 1, 1, 0, s.address(), l.address(), maxNorm, c.address());
    }

    /** The AdamW kernel reading gradScale, the step and the skip flag on the device (no host read: capturable). */
    void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
               float weightDecay, Tensor biasCorrections, Tensor counter, Tensor control) {
        String op = "adamw (device step)";
        TrainingChecks.adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, 1, 1f);
        CudaTensor p = f32(op, "param", param);
        CudaTensor g = f32(op, "grad", grad);
        CudaTensor ms = f32(op, "m", m);
        CudaTensor vs = f32(op, "v", v);
        CudaTensor k = scalar(op, "counter", counter, DType.I32, 1);
        CudaTensor c = scalar(op, "control", control, DType.F32, CONTROL_SIZE);
        int tableSteps = tableSteps(op, "biasCorrections", biasCorrections, 2);
        if (p.numel() == 0) {
            return;
        }
        adamwControlled.launch1d(stream, p.numel(), adamwBlock, p.address(), g.address(), ms.address(),
                vs.address(), p.numel(), lr, beta1, beta2, eps, weightDecay,
                backend.require(op + " biasCorrections", biasCorrections).address(), tableSteps, k.address(),
                c.address());
    }

    void emaUpdate(Tensor average, Tensor theta, Tensor decays, Tensor counter, Tensor control) {
        String op = "emaUpdate";
        CudaTensor a = f32(op, "average", average);
        CudaTensor t = f32(op, "theta", theta);
        Shapes.requireSame(op + ": theta vs average", t, a);
        CudaTensor k = scalar(op, "counter", counter, DType.I32, 1);
        CudaTensor c = scalar(op, "control", control, DType.F32, CONTROL_SIZE);
        int tableSteps = tableSteps(op, "decays", decays, 1);
        if (a.numel() == 0) {
            return;
        }
        emaControlled.launch1d(stream, a.numel(), ELEMENTWISE_BLOCK, a.address(), t.address(), a.numel(),
                backend.require(op + " decays", decays).address(), tableSteps, k.address(), c.address());
    }

    void advanceCounter(Tensor counter, Tensor control) {
        String op = "advanceCounter";
        CudaTensor k = scalar(op, "counter", counter, DType.I32, 1);
        CudaTensor c = scalar(op, "control", control, DType.F32, CONTROL_SIZE);
        counterAdvance.launch(stream, 1, 1, 1, 32, 1, 1, 0, k.address(), c.address());
    }

    /** The device-step multi-tensor AdamW: checks the device scalars and the table here, launches through foreach. */
    void adamwForeach(CudaForeach foreach, List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs,
                      float lr, float beta1, float beta2, float eps, float weightDecay, Tensor biasCorrections,
                      Tensor counter, Tensor control) {
        String op = "adamwForeach (device step)";
        long k = scalar(op, "counter", counter, DType.I32, 1).address();
        long c = scalar(op, "control", control, DType.F32, CONTROL_SIZE).address();
        int tableSteps = tableSteps(op, "biasCorrections", biasCorrections, 2);
        foreach.adamw(params, grads, ms, vs, lr, beta1, beta2, eps, weightDecay,
                backend.require(op + " biasCorrections", biasCorrections).address(), tableSteps, k, c);
    }

    /** The device-step multi-tensor EMA update, as {@link #adamwForeach}. */
    void emaUpdateForeach(CudaForeach foreach, List<Tensor> averages, List<Tensor> thetas, Tensor decays,
                          Tensor counter, Tensor control) {
        String op = "emaUpdateForeach";
        long k = scalar(op, "counter", counter, DType.I32, 1).address();
        long c = scalar(op, "control", control, DType.F32, CONTROL_SIZE).address();
        int tableSteps = tableSteps(op, "decays", decays, 1);
        foreach.emaUpdate(averages, thetas, backend.require(op + " decays", decays).address(), tableSteps, k, c);
    }

    /** The last step a table of fp64 values (I32 word pairs, {@code perStep} values per step, step 0 first) covers. */
    private int tableSteps(String op, String role, Tensor table, int perStep) {
        Objects.requireNonNull(table, () -> op + ": " + role + " is null");
        CudaTensor t = backend.require(op + " " + role, table);
        Shapes.requireDType(op + ": " + role, t, DType.I32);
        long words = t.numel();
        if (words % (2L * perStep) != 0 || words < 4L * perStep) {
            throw new ShapeException(op + ": " + role + " " + t.describe() + " is not a table of " + perStep
                    + " fp64 value(s) per step for steps 0 and up");
        }
        return (int) Math.min(Integer.MAX_VALUE, words / (2L * perStep) - 1);
    }

    private CudaTensor scalar(String op, String role, Tensor t, DType dtype, int numel) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, dtype);
        if (c.numel() != numel) {
            throw new ShapeException(op + ": " + role + " " + c.describe() + " must have " + numel + " element(s)");
        }
        return c;
    }

    private CudaTensor f32(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, DType.F32);
        return c;
    }
}
