package facm.port;

import facm.tensor.BinaryOp;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.ReduceOp;
import facm.tensor.Tensor;
import facm.tensor.UnaryOp;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import static facm.port.KernelFamilies.FP32_TOL;
import static facm.port.KernelFamilies.ROUNDED_TOL;
import static facm.port.KernelFamilies.row;

/** The port-check rows of the primitive {@link facm.tensor.Backend} ops and of {@link facm.tensor.TrainingOps}. */
final class BackendFamilies {
    private BackendFamilies() {
    }

    static List<KernelFamily> all() {
        List<KernelFamily> l = new ArrayList<>();
        l.add(row("fill", Pass.FORWARD, "", DType.F32, "elementwise", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor out = in.out("out", d.rows(), d.width());
            return Prepared.of(() -> in.backend().fill(out, 0.375f), out);
        }));
        l.add(row("fill", Pass.FORWARD, "", DType.BF16, "elementwise", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor out = in.out("out", d.rows(), d.width());
            return Prepared.of(() -> in.backend().fill(out, 0.375f), out);
        }));
        for (UnaryOp u : UnaryOp.values()) {
            // LOG, SQRT and RSQRT need positive arguments; EXP stays finite on (0.05, 3).
            l.add(row("unary", Pass.FORWARD, lower(u), DType.F32, "elementwise", Variant.SIMT, FP32_TOL, null, (in, d) -> {
                Tensor x = in.f32("x", 0.05f, 3f, d.rows(), d.width());
                Tensor out = in.out("out", d.rows(), d.width());
                return Prepared.of(() -> in.backend().unary(u, x, out), out);
            }));
        }
        for (BinaryOp b : BinaryOp.values()) {
            // Same-shape for the even ordinals, a broadcast bias row for the odd ones: both index paths are covered.
            boolean broadcast = b.ordinal() % 2 == 1;
            l.add(row("binary", Pass.FORWARD, lower(b) + (broadcast ? "-row" : ""), DType.F32, "elementwise",
                    Variant.SIMT, FP32_TOL, null, (in, d) -> {
                Tensor a = in.f32("a", -2f, 2f, d.rows(), d.width());
                Tensor c = broadcast ? in.f32("b", 0.5f, 2f, d.width()) : in.f32("b", 0.5f, 2f, d.rows(), d.width());
                Tensor out = in.out("out", d.rows(), d.width());
                return Prepared.of(() -> in.backend().binary(b, a, c, out), out);
            }));
        }
        l.add(row("affine", Pass.FORWARD, "", DType.F32, "elementwise", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor x = in.f32("x", -2f, 2f, d.rows(), d.width());
            Tensor out = in.out("out", d.rows(), d.width());
            return Prepared.of(() -> in.backend().affine(x, 1.5f, -0.25f, out), out);
        }));
        l.add(row("axpby", Pass.FORWARD, "", DType.F32, "elementwise", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor a = in.f32("a", -2f, 2f, d.rows(), d.width());
            Tensor b = in.f32("b", -2f, 2f, d.rows(), d.width());
            Tensor out = in.out("out", d.rows(), d.width());
            return Prepared.of(() -> in.backend().axpby(0.75f, a, -1.25f, b, out), out);
        }));
        for (ReduceOp r : ReduceOp.values()) {
            for (int axis : new int[] {-1, 0, 1}) {
                l.add(row("reduce", Pass.FORWARD, lower(r) + "-axis" + axis, DType.F32, "reduce", Variant.REDUCTION,
                        FP32_TOL, null, (in, d) -> {
                    Tensor x = in.f32("x", -1f, 1f, d.batch(), d.tokens(), d.width());
                    Tensor out = in.out("out", without(x.shape(), axis));
                    return Prepared.of(() -> in.backend().reduce(r, x, axis, out), out);
                }));
            }
        }
        l.add(row("softmax", Pass.FORWARD, "", DType.F32, "softmax", Variant.ROWS, FP32_TOL, null, (in, d) -> {
            Tensor x = in.f32("x", -4f, 4f, d.batch() * d.heads(), d.tokens(), d.tokens());
            Tensor out = in.out("out", x.shape());
            return Prepared.of(() -> in.backend().softmax(x, out), out);
        }));
        l.add(gemm("fp32", DType.F32, GemmPrecision.FP32, DType.F32, Variant.GEMM_FP32, FP32_TOL));
        l.add(gemm("tf32", DType.F32, GemmPrecision.TF32, DType.F32, Variant.GEMM_TF32, ROUNDED_TOL));
        l.add(gemm("out-f32", DType.BF16, GemmPrecision.BF16, DType.F32, Variant.GEMM_BF16, FP32_TOL));
        l.add(gemm("out-bf16", DType.BF16, GemmPrecision.BF16, DType.BF16, Variant.GEMM_BF16, ROUNDED_TOL));
        // Batched scores-like product a·bᵀ per batch: [B·H, T, dh]·[B·H, T, dh]ᵀ.
        l.add(row("gemm", Pass.FORWARD, "batched-nt", DType.F32, "cublasLt", Variant.GEMM_FP32, FP32_TOL,
                d -> 2.0 * d.batch() * d.heads() * d.tokens() * d.tokens() * d.headDim(), (in, d) -> {
            int bh = d.batch() * d.heads();
            Tensor a = in.f32("a", -1f, 1f, bh, d.tokens(), d.headDim());
            Tensor b = in.f32("b", -1f, 1f, bh, d.tokens(), d.headDim());
            Tensor out = in.accumulator("out", bh, d.tokens(), d.tokens());
            return Prepared.of(() -> in.backend().gemm(a, false, b, true, out, 0.5f, 0.25f, GemmPrecision.FP32), out);
        }));
        l.add(row("random", Pass.FORWARD, "normal", DType.F32, "random", Variant.RANDOM, FP32_TOL, null, (in, d) -> {
            Tensor out = in.out("out", d.rows(), d.width() + 1);
            return Prepared.of(() -> in.backend().randomNormal(out, 1234L, 77L), out);
        }));
        l.add(row("random", Pass.FORWARD, "uniform", DType.F32, "random", Variant.RANDOM, FP32_TOL, null, (in, d) -> {
            Tensor out = in.out("out", d.rows(), d.width() + 1);
            return Prepared.of(() -> in.backend().randomUniform(out, 1234L, 77L), out);
        }));
        l.add(row("convert", Pass.FORWARD, "f32-to-bf16", DType.F32, "elementwise", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor x = in.f32("x", -3f, 3f, d.rows(), d.width());
            Tensor out = in.out(DType.BF16, "out", d.rows(), d.width());
            return Prepared.of(() -> in.backend().convert(x, out), out);
        }));
        l.add(row("convert", Pass.FORWARD, "bf16-to-f32", DType.F32, "elementwise", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor x = in.typed(DType.BF16, "x", -3f, 3f, d.rows(), d.width());
            Tensor out = in.out(DType.F32, "out", d.rows(), d.width());
            return Prepared.of(() -> in.backend().convert(x, out), out);
        }));
        l.addAll(TrainingFamilies.all());
        return l;
    }

    /** rows·width · width→hidden, the shape of a linear layer: out = a·Wᵀ (alpha 1, beta 0.5 over random out). */
    private static KernelFamily gemm(String tag, DType in, GemmPrecision p, DType outType, Variant v, double tol) {
        return row("gemm", Pass.FORWARD, tag, in, "cublasLt", v, tol, d -> 2.0 * d.rows() * d.width() * d.hidden(),
                (c, d) -> {
            Tensor a = c.act("a", -1f, 1f, d.rows(), d.width());
            Tensor w = c.act("w", -1f, 1f, d.hidden(), d.width());
            Tensor out = outType == DType.F32 ? c.accumulator("out", d.rows(), d.hidden())
                    : c.typed(DType.BF16, "out", -0.5f, 0.5f, d.rows(), d.hidden());
            return Prepared.of(() -> c.backend().gemm(a, false, w, true, out, 1f, 0.5f, p), out);
        });
    }

    static String lower(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT);
    }

    private static int[] without(int[] shape, int axis) {
        int a = axis < 0 ? shape.length + axis : axis;
        int[] r = new int[shape.length - 1];
        for (int i = 0, j = 0; i < shape.length; i++) {
            if (i != a) {
                r[j++] = shape[i];
            }
        }
        return r;
    }
}
