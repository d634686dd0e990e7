package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;
import facm.tensor.ConsistencyDraws;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.Objects;

import static facm.cuda.KernelArg.F32;
import static facm.cuda.KernelArg.I32;
import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;
import static facm.tensor.TrainingOps.STEP_LOG_VALUES;
import static facm.tensor.TrainingOps.STEP_STATE_SIZE;

/**
 * The CUDA forms of {@link TrainingOps}' per-step inputs (kernels/step_inputs.cu) and step log (kernels/step_log.cu),
 * for {@link CudaTrainingOps}: same argument rules as the reference defaults, and no host read, so a captured step
 * can hold them. Values: the step log and y' are bit-identical to the reference; times, coefficients and the noise
 * use the device's fp64 exp/atan/log/cos/pow (within an ulp or two of Java's before the rounding to float).
 */
final class CudaStepKernels {
    private static final int BLOCK = 256;

    private final CudaBackend backend;
    private final CudaStream stream;
    private final Kernel draws;
    private final Kernel noise;
    private final Kernel stateAdvance;
    private final Kernel stepLoss;
    private final Kernel stepLogEnd;

    CudaStepKernels(CudaBackend backend, KernelLibrary lib, CudaStream stream) {
        this.backend = backend;
        this.stream = stream;
        draws = lib.kernel("consistency_draws", PTR, I32, I32, I32, I32, F32, F32, F32, F32, I32, F32, F32, I32, PTR,
                PTR, PTR, PTR, PTR);
        noise = lib.kernel("consistency_noise", PTR, I64, I64, I64, PTR, PTR, PTR, PTR, PTR);
        stateAdvance = lib.kernel("step_state_advance", PTR);
        stepLoss = lib.kernel("step_loss_f32", PTR, PTR, I32, PTR, PTR, I32, PTR);
        stepLogEnd = lib.kernel("step_log_end", PTR, PTR, PTR, I32, PTR);
    }

    void consistencyDraws(ConsistencyDraws d, Tensor stepState, int first, Tensor t, Tensor r, Tensor coefs,
                                 Tensor y, Tensor yUnguided) {
        String op = "consistencyDraws";
        CudaTensor s = scalar(op, "stepState", stepState, DType.I32, STEP_STATE_SIZE);
        CudaTensor tt = f32(op, "t", t);
        int b = tt.dim(0);
        Shapes.requireShape(op + ": t", tt, b);
        if ((r != null) != (d.kind() == ConsistencyDraws.MEANFLOW)) {
            throw new IllegalArgumentException(op + ": r must be given exactly for meanflow, kind " + d.kind());
        }
        long rAddress = r == null ? 0L : shaped(op, "r", r, DType.F32, b).address();
        CudaTensor c = shaped(op, "coefs", coefs, DType.F32, b, 3);
        CudaTensor yy = shaped(op, "y", y, DType.I32, b);
        long yuAddress = yUnguided == null ? 0L : shaped(op, "yUnguided", yUnguided, DType.I32, b).address();
        if (b == 0) {
            return;
        }
        draws.launch1d(stream, b, BLOCK, s.address(), first, b, d.kind(), d.logSampler() ? 1 : 0,
                d.timeMean(), d.timeStd(), d.relaxP(), d.r2tRatio(), d.scmWarmup(), d.cfgLow(), d.cfgHigh(),
                d.nullClass(), tt.address(), rAddress, c.address(), yy.address(), yuAddress);
    }

    void consistencyNoise(Tensor stepState, long offset, Tensor x1, Tensor t, Tensor eps, Tensor u,
                                 Tensor xt) {
        String op = "consistencyNoise";
        CudaTensor s = scalar(op, "stepState", stepState, DType.I32, STEP_STATE_SIZE);
        CudaTensor x = f32(op, "x1", x1);
        CudaTensor tt = shaped(op, "t", t, DType.F32, x.dim(0));
        CudaTensor e = f32(op, "eps", eps);
        CudaTensor uu = f32(op, "u", u);
        CudaTensor o = f32(op, "xt", xt);
        Shapes.requireSame(op + ": eps vs x1", e, x);
        Shapes.requireSame(op + ": u vs x1", uu, x);
        Shapes.requireSame(op + ": xt vs x1", o, x);
        if (x.numel() == 0) {
            return;
        }
        noise.launch1d(stream, x.numel(), BLOCK, s.address(), offset, x.numel(), x.numel() / x.dim(0),
                x.address(), tt.address(), e.address(), uu.address(), o.address());
    }

    void advanceStepState(Tensor stepState) {
        CudaTensor s = scalar("advanceStepState", "stepState", stepState, DType.I32, STEP_STATE_SIZE);
        stateAdvance.launch(stream, 1, 1, 1, 32, 1, 1, 0, s.address());
    }

    void stepLoss(Tensor term0, Tensor term1, Tensor loss, Tensor stepLog, Tensor logCount) {
        String op = "stepLoss";
        if (term0 == null && term1 == null) {
            throw new IllegalArgumentException(op + ": no loss term");
        }
        int b = (term0 != null ? term0 : term1).dim(0);
        long t0 = term0 == null ? 0L : shaped(op, "term0", term0, DType.F32, b).address();
        long t1 = term1 == null ? 0L : shaped(op, "term1", term1, DType.F32, b).address();
        CudaTensor l = shaped(op, "loss", loss, DType.F32, 1);
        CudaTensor c = shaped(op, "logCount", logCount, DType.I32, 1);
        stepLoss.launch(stream, 1, 1, 1, 32, 1, 1, 0, t0, t1, b, l.address(), logAddress(op, stepLog),
                logCapacity(stepLog), c.address());
    }

    void stepLogEnd(Tensor sumSquares, Tensor control, Tensor stepLog, Tensor logCount) {
        String op = "stepLogEnd";
        CudaTensor s = shaped(op, "sumSquares", sumSquares, DType.F32, 1);
        CudaTensor k = shaped(op, "control", control, DType.F32, TrainingOps.CONTROL_SIZE);
        CudaTensor c = shaped(op, "logCount", logCount, DType.I32, 1);
        stepLogEnd.launch(stream, 1, 1, 1, 32, 1, 1, 0, s.address(), k.address(), logAddress(op, stepLog),
                logCapacity(stepLog), c.address());
    }

    private long logAddress(String op, Tensor stepLog) {
        CudaTensor l = backend.require(op + " stepLog", stepLog);
        Shapes.requireDType(op + ": stepLog", l, DType.I32);
        if (l.numel() == 0 || l.numel() % (2L * STEP_LOG_VALUES) != 0) {
            throw new ShapeException(op + ": stepLog " + l.describe() + " is not rows of " + STEP_LOG_VALUES
                    + " fp64 values");
        }
        return l.address();
    }

    private static int logCapacity(Tensor stepLog) {
        return (int) Math.min(Integer.MAX_VALUE, stepLog.numel() / (2L * STEP_LOG_VALUES));
    }

    private CudaTensor scalar(String op, String role, Tensor t, DType dtype, int numel) {
        return shaped(op, role, t, dtype, numel);
    }

    private CudaTensor f32(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, DType.F32);
        return c;
    }

    private CudaTensor shaped(String op, String role, Tensor t, DType dtype, int... shape) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CudaTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, dtype);
        Shapes.requireShape(op + ": " + role, c, shape);
        return c;
    }
}
