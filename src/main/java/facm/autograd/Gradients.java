package facm.autograd;

import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One F32 gradient buffer per trainable parameter of a model, keyed like {@link ParameterTable}. Backward passes
 * ACCUMULATE into these buffers; the training loop calls {@link #zero()} before each step.
 */
public final class Gradients implements AutoCloseable {
    private final Backend backend;
    private final Map<String, Tensor> grads = new LinkedHashMap<>();

    public Gradients(ModelWeights weights) {
        this.backend = weights.backend();
        for (ParameterTable.Entry e : weights.table().entries()) {
            if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                grads.put(e.key(), backend.zeros(DType.F32, e.shape()));
            }
        }
    }

    public Tensor get(String key) {
        Tensor g = grads.get(key);
        if (g == null) {
            throw new IllegalArgumentException("no gradient for '" + key + "' (not a trainable parameter)");
        }
        return g;
    }

    public Map<String, Tensor> asMap() {
        return java.util.Collections.unmodifiableMap(grads);
    }

    /** Every gradient set to 0 ({@link facm.tensor.TrainingOps#zeroForeach}: one launch on CUDA). */
    public void zero() {
        backend.training().zeroForeach(List.copyOf(grads.values()));
    }

    @Override
    public void close() {
        for (Tensor g : grads.values()) {
            g.close();
        }
        grads.clear();
    }
}
