package facm.bench;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * The tensors of one per-kernel benchmark: random normal inputs made on the device (never zeros), in F32 or BF16,
 * all closed together. {@link #firstWorking} finds the output dtype an op accepts for its input dtype (BF16 kernels
 * may write BF16 or F32 activations; until a BF16 kernel exists every choice fails and the benchmark fails cleanly
 * with the op's own messages).
 */
final class KernelInputs implements AutoCloseable {
    private final Backend be;
    private final List<Tensor> owned = new ArrayList<>();
    private long seed = 100;

    KernelInputs(Backend be) {
        this.be = be;
    }

    /** A random normal tensor of this dtype (F32 or BF16). */
    Tensor random(String name, DType dtype, int... shape) {
        Tensor f32 = be.empty(name, DType.F32, shape);
        be.randomNormal(f32, seed++, 0);
        if (dtype == DType.F32) {
            return keep(f32);
        }
        try (f32) {
            Tensor t = be.empty(name, dtype, shape);
            be.convert(f32, t);
            return keep(t);
        }
    }

    Tensor empty(String name, DType dtype, int... shape) {
        return keep(be.empty(name, dtype, shape));
    }

    Tensor keep(Tensor t) {
        owned.add(t);
        return t;
    }

    static DType dtype(String name) {
        return switch (name.toUpperCase(Locale.ROOT)) {
            case "F32", "FP32" -> DType.F32;
            case "BF16" -> DType.BF16;
            default -> throw new IllegalArgumentException("dtype '" + name + "': use F32 or BF16");
        };
    }

    /**
     * Runs {@code attempt} (allocate outputs of the given dtype, run the op once, synchronize) for the input dtype and
     * then F32, returning the first output dtype that works; throws with every attempt's message when none does.
     */
    DType firstWorking(String what, DType input, Consumer<DType> attempt) {
        List<DType> choices = input == DType.F32 ? List.of(DType.F32) : List.of(input, DType.F32);
        StringBuilder errors = new StringBuilder();
        for (DType out : choices) {
            int before = owned.size();
            try {
                attempt.accept(out);
                be.synchronize();
                return out;
            } catch (RuntimeException e) {
                errors.append("; with ").append(out).append(" outputs: ").append(e);
                while (owned.size() > before) {
                    owned.remove(owned.size() - 1).close();
                }
            }
        }
        throw new IllegalStateException(what + " does not run on " + input + " inputs on " + be.describe()
                + errors);
    }

    @Override
    public void close() {
        for (int i = owned.size() - 1; i >= 0; i--) {
            owned.get(i).close();
        }
        owned.clear();
    }
}
