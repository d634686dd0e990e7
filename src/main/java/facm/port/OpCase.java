package facm.port;

/**
 * How to exercise one kernel family through the public op interfaces (Backend, NetworkOps, TrainingOps): make the
 * inputs with {@code in} (the same data on every backend), then return the op call and its outputs. Work a case
 * needs before the op (e.g. the forward pass whose rstd or lse a backward op reads) runs here, not in the timed call.
 */
@FunctionalInterface
public interface OpCase {
    Prepared prepare(CaseInputs in, Dims d);
}
