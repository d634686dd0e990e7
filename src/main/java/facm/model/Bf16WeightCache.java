package facm.model;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.IdentityHashMap;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * bf16 copies of a model's f32 weights and biases for tape-less BF16 passes, made on first use and kept across
 * passes (a forward casts no weight), keyed on the weight tensors themselves. The copies are only as fresh as the
 * last {@link #invalidate()}: whoever updates the weights in place (an optimizer step, an EMA update, a checkpoint
 * load into the same tensors) must invalidate the cache before the next pass that uses it, or that pass computes
 * with the old weights. Frozen weights (a teacher, a loaded model for sampling) never need it.
 *
 * <p>Memory: 2 bytes per parameter (XL/1: 1.35 GB). Not thread-safe; one model, one thread.
 */
public final class Bf16WeightCache implements UnaryOperator<Tensor>, AutoCloseable {
    private final Backend be;
    private final Map<Tensor, Tensor> copies = new IdentityHashMap<>();
    private long version;

    public Bf16WeightCache(Backend backend) {
        this.be = backend;
    }

    /** The bf16 copy of an f32 {@code weight} (same shape), owned by this cache. */
    @Override
    public Tensor apply(Tensor weight) {
        Tensor copy = copies.get(weight);
        if (copy == null || copy.isClosed()) {
            if (weight.dtype() != DType.F32) {
                throw new IllegalArgumentException("Bf16WeightCache: " + weight.describe() + " is not an f32 weight");
            }
            copy = be.empty(weight.name() + " bf16", DType.BF16, weight.shape());
            be.convert(weight, copy);
            copies.put(weight, copy);
        }
        return copy;
    }

    /** Frees every copy: the next pass casts the current weights again. */
    public void invalidate() {
        for (Tensor c : copies.values()) {
            c.close();
        }
        copies.clear();
        version++;
    }

    /** How many times the cache was invalidated (for tests and logs). */
    public long version() {
        return version;
    }

    /** Copies held now. */
    public int size() {
        return copies.size();
    }

    @Override
    public void close() {
        invalidate();
    }
}
