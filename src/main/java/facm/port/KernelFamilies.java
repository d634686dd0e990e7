package facm.port;

import facm.tensor.DType;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The registry of port-check rows: every op of Backend, NetworkOps and TrainingOps in each direction it has, F32 and
 * (where an op accepts it) BF16. Add a family by adding one {@link #row} to the list of its interface
 * ({@link BackendFamilies}, {@link TrainingFamilies}, {@link NetworkFamilies}, {@link NetworkGradFamilies}) and its
 * id to the tuning table (a test checks both agree).
 *
 * <p>Error measure: per output, max |cuda − cpu| / max |cpu| (the largest error relative to the output's scale, so a
 * value near zero by cancellation is not held to a relative bound). fp32 kernels differ from the CPU (which sums in
 * fp64 or in another order, and uses Java's correctly rounded functions) by a few ulp per term: {@link #FP32_TOL}
 * leaves a wide margin over that and still catches every real defect (a wrong index or a skipped element is O(1)).
 * Rows whose outputs are rounded to bf16 or computed in tf32 get {@link #ROUNDED_TOL} (a few bf16 ulp, 2⁻⁸ each).
 */
public final class KernelFamilies {
    public static final double FP32_TOL = 1e-4;
    public static final double ROUNDED_TOL = 3e-2;

    private static final List<KernelFamily> ALL = build();

    private KernelFamilies() {
    }

    public static List<KernelFamily> all() {
        return ALL;
    }

    /** The distinct tuning-table ids ("attention.fwd", ...) in registry order. */
    public static Set<String> ids() {
        Set<String> s = new LinkedHashSet<>();
        for (KernelFamily f : ALL) {
            s.add(f.id());
        }
        return s;
    }

    static KernelFamily row(String family, Pass pass, String tag, DType dtype, String module, Variant variant,
                            double tolerance, FlopCount flops, OpCase op) {
        return new KernelFamily(family, pass, tag, dtype, module, variant, tolerance, flops, op);
    }

    private static List<KernelFamily> build() {
        List<KernelFamily> l = new ArrayList<>();
        l.addAll(BackendFamilies.all());
        l.addAll(NetworkFamilies.all());
        l.addAll(NetworkGradFamilies.all());
        Set<String> labels = new LinkedHashSet<>();
        for (KernelFamily f : l) {
            if (!labels.add(f.label())) {
                throw new IllegalStateException("port-check registry: two rows named " + f.label());
            }
        }
        return List.copyOf(l);
    }
}
