package facm.port;

import facm.tensor.Tensor;

import java.util.List;

/**
 * A family case ready to run on one backend: {@code run} queues the op (it may be called many times for the
 * micro-benchmark: in-place ops then keep updating their state, which does not change the work done), and
 * {@code outputs} are the tensors compared against the CPU reference after one run, in a fixed order.
 */
public record Prepared(Runnable run, List<Tensor> outputs) {
    public static Prepared of(Runnable run, Tensor... outputs) {
        return new Prepared(run, List.of(outputs));
    }
}
