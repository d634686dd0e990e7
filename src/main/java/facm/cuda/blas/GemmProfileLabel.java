package facm.cuda.blas;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The label of a cuBLASLt product in facm.cuda.KernelProfile's table: what its plan depends on, in one short line,
 * e.g. {@code gemm 8192x3456x1152 bf16->bf16 NT bias} (M×N×K of the row-major product C[M,N] = op(A)[M,K]·op(B)[K,N],
 * input and output dtypes, whether A and B are transposed, the epilogue) or {@code gemm 16x[256x256x72] bf16->f32 NN
 * +C} (16 batched products, accumulating into C). Labels are cached per product, so a profiled GEMM allocates no
 * string after its first call.
 */
public final class GemmProfileLabel {
    private static final Map<RowMajorGemm, String> PLAIN = new ConcurrentHashMap<>();
    private static final Map<RowMajorGemm, String> WITH_BIAS = new ConcurrentHashMap<>();
    private static final int MAX_CACHED = 4096;

    private GemmProfileLabel() {
    }

    /** The label of {@code g}, with the bias epilogue when {@code bias}. */
    public static String of(RowMajorGemm g, boolean bias) {
        Map<RowMajorGemm, String> cache = bias ? WITH_BIAS : PLAIN;
        if (cache.size() >= MAX_CACHED) {
            // The key holds alpha and beta: a caller varying them every call must not grow the cache forever.
            String known = cache.get(g);
            return known != null ? known : describe(g, bias);
        }
        return bias ? cache.computeIfAbsent(g, GemmProfileLabel::biased)
                : cache.computeIfAbsent(g, GemmProfileLabel::plain);
    }

    private static String plain(RowMajorGemm g) {
        return describe(g, false);
    }

    private static String biased(RowMajorGemm g) {
        return describe(g, true);
    }

    static String describe(RowMajorGemm g, boolean bias) {
        String mnk = g.m() + "x" + g.n() + "x" + g.k();
        return "gemm " + (g.batch() == 1 ? mnk : g.batch() + "x[" + mnk + "]") + " "
                + g.kind().inputDType().lower() + "->" + g.kind().outputDType().lower()
                + (g.kind() == GemmKind.TF32 ? " tf32" : "") + " " + (g.transA() ? "T" : "N")
                + (g.transB() ? "T" : "N") + (bias ? " bias" : "") + (g.beta() != 0f ? " +C" : "");
    }
}
