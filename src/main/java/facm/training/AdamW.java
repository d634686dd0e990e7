package facm.training;

import facm.autograd.Gradients;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * PyTorch's AdamW (decoupled weight decay) over every trainable tensor of a model: first and second moments m, v
 * (F32, zeros at the start) per tensor, one shared step counter that counts applied updates (a skipped step does not
 * advance it, as PyTorch's counter does not advance when {@code optimizer.step()} is not called). Constant learning
 * rate, no warmup or schedule (facm-spec.md §5.1, §11.18). The update itself is {@link TrainingOps#adamwForeach}: the
 * per-tensor fused pass of {@link TrainingOps#adamw} over every tensor, one launch on CUDA.
 */
public final class AdamW implements OptimizerMoments, AutoCloseable {

    /** Hyper-parameters, validated. */
    public record Options(float lr, float beta1, float beta2, float eps, float weightDecay) {
        public Options {
            require(lr > 0 && Float.isFinite(lr), "learning rate must be > 0, got " + lr);
            require(beta1 >= 0 && beta1 < 1, "beta1 must be in [0, 1), got " + beta1);
            require(beta2 >= 0 && beta2 < 1, "beta2 must be in [0, 1), got " + beta2);
            require(eps > 0, "eps must be > 0, got " + eps);
            require(weightDecay >= 0 && Float.isFinite(weightDecay), "weight decay must be >= 0, got " + weightDecay);
        }

        private static void require(boolean ok, String message) {
            if (!ok) {
                throw new IllegalArgumentException("AdamW: " + message);
            }
        }
    }

    private final Options options;
    private final TrainingOps ops;
    private final Map<String, Tensor> m = new LinkedHashMap<>();
    private final Map<String, Tensor> v = new LinkedHashMap<>();
    private int step;
    /** Device-step state ({@link #enableDeviceStep}): the update counter and the bias-correction table; else null. */
    private Tensor deviceStep;
    private Tensor biasCorrections;

    /** Zero moments for every trainable tensor of {@code weights}, on its backend, updated through {@code ops}. */
    public AdamW(ModelWeights weights, Options options, TrainingOps ops) {
        this.options = options;
        this.ops = ops;
        Backend be = weights.backend();
        try {
            for (ParameterTable.Entry e : weights.table().entries()) {
                if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                    m.put(e.key(), be.zeros(DType.F32, e.shape()));
                    v.put(e.key(), be.zeros(DType.F32, e.shape()));
                }
            }
        } catch (RuntimeException ex) {
            close();
            throw ex;
        }
    }

    public Options options() {
        return options;
    }

    /** Updates applied so far (PyTorch's {@code state['step']}); the next update uses step() + 1. */
    public int step() {
        return step;
    }

    /**
     * One update of every trainable tensor with its gradient times {@code gradScale} (the clip factor, 1 when not
     * clipping). The caller has already decided the step is finite.
     */
    public void update(ModelWeights weights, Gradients grads, float gradScale) {
        int next = Math.addExact(step, 1);
        Operands o = operands(weights, grads);
        ops.adamwForeach(o.params(), o.grads(), o.ms(), o.vs(), options.lr(), options.beta1(), options.beta2(),
                options.eps(), options.weightDecay(), next, gradScale);
        step = next;
    }

    /** The four tensor lists of one update, in the moments' (the parameter table's) order. */
    private record Operands(List<Tensor> params, List<Tensor> grads, List<Tensor> ms, List<Tensor> vs) {
    }

    private Operands operands(ModelWeights weights, Gradients grads) {
        List<Tensor> params = new ArrayList<>(m.size());
        List<Tensor> gs = new ArrayList<>(m.size());
        for (String key : m.keySet()) {
            params.add(weights.get(key));
            gs.add(grads.get(key));
        }
        return new Operands(params, gs, new ArrayList<>(m.values()), new ArrayList<>(v.values()));
    }

    /**
     * Prepares the device form of {@link #update} for steps up to {@code lastStep}: a device copy of the update counter
     * and a table of (1 − β1^k, 1 − β2^k) for k = 0 … lastStep, computed with the host form's expression. Calling it
     * again (after a restore) re-uploads the counter.
     */
    public void enableDeviceStep(Backend be, int lastStep) {
        closeDeviceStep();
        double[] pairs = new double[Math.multiplyExact(2, Math.addExact(lastStep, 1))];
        for (int k = 0; k <= lastStep; k++) {
            pairs[2 * k] = 1.0 - Math.pow(options.beta1(), k);
            pairs[2 * k + 1] = 1.0 - Math.pow(options.beta2(), k);
        }
        biasCorrections = Fp64Table.upload(be, "adam.bias_corrections", pairs);
        deviceStep = be.upload("adam.step", new int[] {step}, 1);
    }

    /**
     * The device form of {@link #update} (no host read): every tensor through the device-step AdamW op with the clip
     * factor and skip flag of {@code control}, then the device counter advances unless skipped. The host counter
     * {@link #step()} is stale until {@link #pullDeviceStep}.
     */
    public void updateOnDevice(ModelWeights weights, Gradients grads, Tensor control) {
        if (deviceStep == null) {
            throw new IllegalStateException("AdamW: updateOnDevice before enableDeviceStep");
        }
        Operands o = operands(weights, grads);
        ops.adamwForeach(o.params(), o.grads(), o.ms(), o.vs(), options.lr(), options.beta1(), options.beta2(),
                options.eps(), options.weightDecay(), biasCorrections, deviceStep, control);
        ops.advanceCounter(deviceStep, control);
    }

    /** Copies the device update counter into {@link #step()} (one synchronizing read; for log steps and checkpoints). */
    public void pullDeviceStep() {
        if (deviceStep != null) {
            step = deviceStep.backend().downloadInts(deviceStep)[0];
        }
    }

    private void closeDeviceStep() {
        if (deviceStep != null) {
            deviceStep.close();
            biasCorrections.close();
            deviceStep = null;
            biasCorrections = null;
        }
    }

    /** First moments by parameter key (for checkpoints). */
    public Map<String, Tensor> firstMoments() {
        return Collections.unmodifiableMap(m);
    }

    /** Second moments by parameter key (for checkpoints). */
    public Map<String, Tensor> secondMoments() {
        return Collections.unmodifiableMap(v);
    }

    /** Restores the update counter of a checkpoint. */
    public void restoreStep(int savedStep) {
        if (savedStep < 0) {
            throw new IllegalArgumentException("AdamW: saved step " + savedStep + " is negative");
        }
        step = savedStep;
    }

    /**
     * Restores m and v of one parameter from host values (a checkpoint is read one tensor at a time, so a large
     * model's optimizer state never sits on the host all at once).
     */
    public void restoreMoments(String key, float[] firstMoment, float[] secondMoment) {
        Tensor oldM = m.get(key);
        if (oldM == null) {
            throw new IllegalArgumentException("AdamW: no moments for '" + key + "' (not a trainable parameter)");
        }
        if (firstMoment.length != oldM.numel() || secondMoment.length != oldM.numel()) {
            throw new IllegalArgumentException("AdamW: saved moments for " + oldM.describe() + " have "
                    + firstMoment.length + " and " + secondMoment.length + " values");
        }
        Backend be = oldM.backend();
        Tensor oldV = v.get(key);
        m.put(key, be.upload("adam.m." + key, firstMoment, oldM.shape()));
        oldM.close();
        v.put(key, be.upload("adam.v." + key, secondMoment, oldV.shape()));
        oldV.close();
    }

    @Override
    public void close() {
        closeDeviceStep();
        m.values().forEach(Tensor::close);
        v.values().forEach(Tensor::close);
        m.clear();
        v.clear();
    }
}
