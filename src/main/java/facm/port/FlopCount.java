package facm.port;

/** Floating-point operations of one call of a compute-bound family at the given sizes (a multiply-add counts 2). */
@FunctionalInterface
public interface FlopCount {
    double flops(Dims d);
}
