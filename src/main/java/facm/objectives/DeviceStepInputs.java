package facm.objectives;

import facm.data.Batch;
import facm.tensor.Backend;
import facm.tensor.ConsistencyDraws;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.Arrays;

/**
 * The per-step inputs of a consistency step made on the device (issue 7, the captured training step): fixed buffers
 * allocated once (a CUDA graph replays fixed addresses), the batch copied into them with one copy each
 * ({@link TrainingOps#copyIn}: pinned and asynchronous on CUDA), and a step state (seed, step) in device memory that
 * {@link TrainingOps#consistencyDraws} and {@link TrainingOps#consistencyNoise} key Philox with and
 * {@link TrainingOps#advanceStepState} advances after them. The host writes the state only when its own step count
 * disagrees with the device's (the first step, after a resume or a jump), so in steady state nothing per step comes
 * from the host but the batch.
 */
final class DeviceStepInputs implements AutoCloseable {
    private Backend backend;
    private int[] shape;
    private boolean guided;
    private Tensor stepState;
    private Tensor x1;
    private Tensor y;
    private Tensor eps;
    private Tensor u;
    private Tensor xt;
    private Tensor t;
    private Tensor r;
    private Tensor coefs;
    private Tensor yUnguided;
    /** The step the device state holds next (after its last advance); -1: not written yet. */
    private long deviceStep = -1;
    private long deviceSeed;

    /** The draws' constants and the batch's first global position of the loaded step. */
    private ConsistencyDraws draws;
    private int first;

    /**
     * The host side of a step: {@code batch} (the samples at global positions first, first + 1, …) into the fixed
     * buffers, and the step state when the device's step is not {@code step} (the first step, a resume). Not
     * capturable (host copies); {@link #compute} is.
     */
    void load(Batch batch, long seed, long step, int first, ConsistencyDraws draws, Backend be) {
        allocate(be, batch.shape(), draws);
        TrainingOps ops = be.training();
        if (step != deviceStep || seed != deviceSeed) {
            ops.copyIn(TrainingOps.stepStateWords(seed, step), stepState);
            deviceSeed = seed;
        }
        ops.copyIn(batch.images(), x1);
        ops.copyIn(batch.labels(), y);
        this.draws = draws;
        this.first = first;
        deviceStep = step + 1; // compute advances the device state by one
    }

    /**
     * The device side: times, coefficients, y', noise, u and x_t of the loaded step from the device step state, which
     * then advances (no host read or write: a captured step replays it). The returned tensors stay owned here.
     */
    ConsistencyObjective.StepTensors compute() {
        if (draws == null) {
            throw new IllegalStateException("device step inputs: compute before load");
        }
        TrainingOps ops = backend.training();
        ops.consistencyDraws(draws, stepState, first, t, r, coefs, y, guided ? yUnguided : null);
        ops.consistencyNoise(stepState, FlowMatchingObjective.noiseOffset(eps, first), x1, t, eps, u, xt);
        ops.advanceStepState(stepState);
        return new ConsistencyObjective.StepTensors(u, xt, t, r, coefs, y, guided ? yUnguided : null);
    }

    /** {@link #load} then {@link #compute}. */
    ConsistencyObjective.StepTensors prepare(Batch batch, long seed, long step, int first, ConsistencyDraws draws,
                                             Backend be) {
        load(batch, seed, step, first, draws, be);
        return compute();
    }

    private void allocate(Backend be, int[] batchShape, ConsistencyDraws draws) {
        boolean wantsR = draws.kind() == ConsistencyDraws.MEANFLOW;
        if (backend == be && Arrays.equals(shape, batchShape) && (r != null) == wantsR) {
            guided = draws.nullClass() >= 0;
            return;
        }
        close();
        int b = batchShape[0];
        backend = be;
        shape = batchShape.clone();
        guided = draws.nullClass() >= 0;
        try {
            stepState = be.upload("step state", new int[TrainingOps.STEP_STATE_SIZE], TrainingOps.STEP_STATE_SIZE);
            x1 = be.empty("x1 (fixed)", DType.F32, batchShape);
            y = be.upload("y (fixed)", new int[b], b);
            eps = be.empty("eps (fixed)", DType.F32, batchShape);
            u = be.empty("u (fixed)", DType.F32, batchShape);
            xt = be.empty("x_t (fixed)", DType.F32, batchShape);
            t = be.zeros(DType.F32, b);
            r = wantsR ? be.zeros(DType.F32, b) : null;
            coefs = be.zeros(DType.F32, b, 3);
            yUnguided = be.upload("y' (fixed)", new int[b], b);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    @Override
    public void close() {
        for (Tensor x : new Tensor[] {stepState, x1, y, eps, u, xt, t, r, coefs, yUnguided}) {
            if (x != null) {
                x.close();
            }
        }
        stepState = x1 = y = eps = u = xt = t = r = coefs = yUnguided = null;
        backend = null;
        shape = null;
        draws = null;
        deviceStep = -1;
    }
}
