package facm.tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Owns the temporaries of a region: tensors made through {@link #track} are closed, newest first, when the scope
 * closes. Use with try-with-resources so an exception frees them too.
 */
public final class TensorScope implements AutoCloseable {
    private final List<Tensor> owned = new ArrayList<>();

    public <T extends Tensor> T track(T t) {
        owned.add(t);
        return t;
    }

    /** Stops tracking {@code t} so it outlives the scope (e.g. a result returned to the caller). */
    public <T extends Tensor> T keep(T t) {
        owned.remove(t);
        return t;
    }

    @Override
    public void close() {
        for (int i = owned.size() - 1; i >= 0; i--) {
            owned.get(i).close();
        }
        owned.clear();
    }
}
