package facm.tensor;

/** Reductions over one axis. Sums accumulate in at least fp32 (CPU: fp64). */
public enum ReduceOp {
    SUM, MEAN, MAX
}
