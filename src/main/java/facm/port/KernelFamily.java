package facm.port;

import facm.tensor.DType;

/**
 * One row of the port check: an op family in one direction and dtype, how to run it ({@link OpCase}), how close to
 * the CPU reference it must come, and what one call costs. Registered in {@link KernelFamilies}; adding a family is
 * adding one of these.
 *
 * @param family    the op family, e.g. "attention" (with {@code pass} it names the tuning-table row)
 * @param pass      forward, backward or JVP
 * @param tag       distinguishes cases of one family and pass (e.g. the unary function), "" when there is one
 * @param dtype     activation dtype of the case: F32, or BF16 for the bf16 path of an op that accepts it
 * @param module    the kernels/*.cu module that implements it, or "cublasLt"
 * @param variant   how the code path is named
 * @param tolerance largest allowed max-relative error (|cuda − cpu| over the largest |cpu| of each output)
 * @param flops     FLOPs per call for compute-bound families, or null: the family is bandwidth-bound and is rated
 *                  by the bytes of its inputs and outputs against the card's copy bandwidth
 * @param op        the case
 */
public record KernelFamily(String family, Pass pass, String tag, DType dtype, String module, Variant variant,
                           double tolerance, FlopCount flops, OpCase op) {

    /** The tuning-table key of this family and pass, e.g. "attention.bwd". */
    public String id() {
        return family + "." + pass.label();
    }

    /** The row name, e.g. "unary.fwd[exp]" or "attention.jvp bf16". */
    public String label() {
        return id() + (tag.isEmpty() ? "" : "[" + tag + "]") + (dtype == DType.BF16 ? " bf16" : "");
    }

    public boolean computeBound() {
        return flops != null;
    }

    /** Stable per-row seed, so the CPU and CUDA runs (and reruns) see the same inputs. */
    long seed() {
        return 0x9E3779B97F4A7C15L ^ label().hashCode();
    }
}
