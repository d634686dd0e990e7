package facm.backend.cpu;

import static facm.backend.cpu.CpuNetworkArgs.array;
import static facm.tensor.NetworkChecks.requireChunks;
import static facm.tensor.Shapes.requireNoSharing;
import static facm.tensor.Shapes.requireRank;

import facm.backend.cpu.CpuNetworkArgs.AttentionInputs;
import facm.backend.cpu.CpuNetworkArgs.NormInputs;
import facm.backend.cpu.CpuNetworkArgs.QkvInputs;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.NetworkChecks;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Arrays;
import java.util.Objects;

/**
 * The backward twins of {@link CpuNetworkOps} (the contracts are in {@link facm.tensor.NetworkOps}): argument checks
 * here, loops next to their forwards in {@link CpuPatches}, {@link CpuNorms}, {@link CpuAttention} and
 * {@link CpuAttentionBackward} (softmax attention), {@link CpuSwiglu}, and the small elementwise ones (embedding,
 * SiLU) here.
 *
 * <p>Numerics: float64 throughout, each output element rounded to fp32 once; a parameter gradient adds its float64
 * sum to the stored fp32 value and rounds once. Every sum runs in an order fixed by the shapes alone (never by the
 * thread count or scheduling), so a backward pass is bit-reproducible, which a resumed training run relies on.
 *
 * <p>Gradient outputs may be null (not needed). Aliasing: activation gradients that are row-local may overwrite the
 * incoming gradient (rmsNormModulate's gradX = gradOut, gatedResidual's gradA = gradH, siluBackward's gradIn = gradOut
 * or x); every other gradient output must not share storage with any argument.
 */
final class CpuNetworkBackward {
    private final CpuNetworkArgs args;

    CpuNetworkBackward(CpuNetworkArgs args) {
        this.args = Objects.requireNonNull(args, "CpuNetworkBackward: args is null");
    }

    // ---------------------------------------------------------------- layout

    void patchifyBackward(Tensor gradTokens, int patch, Tensor gradX) {
        String op = "patchifyBackward";
        CpuTensor tokens = args.f32(op, "gradTokens", gradTokens);
        if (gradX == null) {
            return;
        }
        CpuTensor image = args.f32(op, "gradX", gradX);
        CpuPatches.Grid grid = args.patchGrid(op, "gradX", image, "gradTokens", tokens, patch, "C·p·p");
        CpuPatches.convWeightOrder(args.parallel(), grid, image.f32(), tokens.f32(), false);
    }

    void unpatchifyBackward(Tensor gradOut, int patch, Tensor gradTokens) {
        String op = "unpatchifyBackward";
        CpuTensor image = args.f32(op, "gradOut", gradOut);
        if (gradTokens == null) {
            return;
        }
        CpuTensor tokens = args.f32(op, "gradTokens", gradTokens);
        CpuPatches.Grid grid = args.patchGrid(op, "gradOut", image, "gradTokens", tokens, patch, "p·p·C");
        CpuPatches.channelLastOrder(args.parallel(), grid, image.f32(), tokens.f32(), true);
    }

    /**
     * gradTable[v] += Σ_{b: ids[b] = v} gradOut[b]. The batch rows are grouped by id (a stable counting sort), and
     * each table row sums its group in batch order, so the work splits over table rows without races or
     * order-dependent rounding.
     */
    void embeddingBackward(Tensor gradOut, Tensor ids, Tensor gradTable) {
        String op = "embeddingBackward";
        CpuTensor g = args.f32(op, "gradOut", gradOut);
        CpuTensor idt = args.require(op, "ids", ids);
        Shapes.requireDType(op + ": ids", idt, DType.I32);
        requireRank(op, "ids [B]", idt, 1);
        int b = idt.dim(0);
        requireRank(op, "gradOut [B, D]", g, 2);
        if (g.dim(0) != b) {
            throw new ShapeException(op + ": gradOut " + g.describe() + " should have one row per id of "
                    + idt.describe());
        }
        if (gradTable == null) {
            return;
        }
        CpuTensor table = args.f32(op, "gradTable", gradTable);
        requireRank(op, "gradTable [V, D]", table, 2);
        int rows = table.dim(0), d = table.dim(1);
        Shapes.requireShape(op + ": gradOut [B, D] for gradTable " + table.describe(), g, b, d);
        requireNoSharing(op, table, g);
        int[] is = idt.i32();
        int[] groupStart = new int[rows + 1];
        for (int i = 0; i < b; i++) {
            if (is[i] < 0 || is[i] >= rows) {
                throw new IndexOutOfBoundsException(op + ": ids " + idt.describe() + " element " + i + " is " + is[i]
                        + ", outside the rows [0, " + rows + ") of gradTable " + table.describe());
            }
            groupStart[is[i] + 1]++;
        }
        for (int v = 0; v < rows; v++) {
            groupStart[v + 1] += groupStart[v];
        }
        int[] order = new int[b];
        int[] next = Arrays.copyOf(groupStart, rows);
        for (int i = 0; i < b; i++) {
            order[next[is[i]]++] = i;
        }
        float[] gs = g.f32(), ts = table.f32();
        args.parallel().forRange(rows, CpuNetworkOps.grain(d + (long) d * b / Math.max(1, rows)), (s, e) -> {
            double[] acc = new double[d];
            for (int v = (int) s; v < e; v++) {
                if (groupStart[v] == groupStart[v + 1]) {
                    continue;
                }
                for (int j = 0; j < d; j++) {
                    acc[j] = ts[v * d + j];
                }
                for (int n = groupStart[v]; n < groupStart[v + 1]; n++) {
                    int src = order[n] * d;
                    for (int j = 0; j < d; j++) {
                        acc[j] += gs[src + j];
                    }
                }
                for (int j = 0; j < d; j++) {
                    ts[v * d + j] = (float) acc[j];
                }
            }
        });
    }

    // ---------------------------------------------------------------- norms and modulation

    /** ρ comes from the saved {@code rstd} (required), so eps is not needed here. */
    void rmsNormModulateBackward(Tensor x, Tensor weight, Tensor mod, int shiftChunk, int scaleChunk, Tensor rstd,
                                 Tensor gradOut, Tensor gradX, Tensor gradWeight, Tensor gradMod) {
        String op = "rmsNormModulateBackward";
        NormInputs in = args.normInputs(op, x, weight, mod, shiftChunk, scaleChunk);
        Objects.requireNonNull(rstd, () -> op + ": rstd is null; the backward needs the ρ saved by the forward");
        CpuTensor r = args.rowRstd(op, rstd, in);
        CpuTensor g = args.f32(op, "gradOut", gradOut);
        Shapes.requireSame(op + " (gradOut vs x)", g, in.x());
        CpuTensor gx = null, gw = null, gm = null;
        if (gradX != null) {
            gx = args.f32(op, "gradX", gradX);
            Shapes.requireSame(op + " (gradX vs x)", gx, in.x());
            requireNoSharing(op, gx, in.x(), in.weight(), in.mod(), r);
        }
        if (gradWeight != null) {
            gw = args.f32(op, "gradWeight", gradWeight);
            Shapes.requireSame(op + " (gradWeight vs weight)", gw, in.weight());
            requireNoSharing(op, gw, in.x(), in.weight(), in.mod(), r, g, gx);
        }
        if (gradMod != null) {
            if (in.mod() == null) {
                throw new IllegalArgumentException(op + ": gradMod " + gradMod.describe() + " was given but mod is "
                        + "null (plain RMSNorm), so there is no modulation to differentiate");
            }
            gm = args.f32(op, "gradMod", gradMod);
            Shapes.requireSame(op + " (gradMod vs mod)", gm, in.mod());
            requireNoSharing(op, gm, in.x(), in.weight(), in.mod(), r, g, gx, gw);
        }
        CpuNorms.rmsNormModulateBackward(args.parallel(), new CpuNorms.NormRows(in.rows(), in.tokens(), in.d()),
                in.x().f32(), in.weight().f32(), array(in.mod()), in.modWidth(), shiftChunk, scaleChunk, r.f32(),
                g.f32(), array(gx), array(gw), array(gm));
    }

    void gatedResidualBackward(Tensor a, Tensor mod, int gateChunk, Tensor gradH, Tensor gradA, Tensor gradMod) {
        String op = "gatedResidualBackward";
        CpuTensor as = args.f32(op, "a", a);
        CpuTensor m = args.f32(op, "mod", mod);
        CpuTensor gh = args.f32(op, "gradH", gradH);
        requireRank(op, "a [B,T,D]", as, 3);
        Shapes.requireSame(op + " (gradH vs a)", gh, as);
        int d = as.dim(2);
        requireChunks(op, m, as.dim(0), d, new String[] {"gateChunk"}, gateChunk);
        CpuTensor ga = null, gm = null;
        if (gradA != null) {
            ga = args.f32(op, "gradA", gradA);
            Shapes.requireSame(op + " (gradA vs a)", ga, as);
            requireNoSharing(op, ga, as, m);
        }
        if (gradMod != null) {
            gm = args.f32(op, "gradMod", gradMod);
            Shapes.requireSame(op + " (gradMod vs mod)", gm, m);
            requireNoSharing(op, gm, as, m, gh, ga);
        }
        CpuNorms.gatedResidualBackward(args.parallel(), new CpuNorms.NormRows(as.dim(0) * as.dim(1), as.dim(1), d),
                as.f32(), m.f32(), m.dim(1), gateChunk, gh.f32(), array(ga), array(gm));
    }

    // ---------------------------------------------------------------- attention

    void qkNormRopeBackward(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                            Tensor ropeSin, Tensor rstd, Tensor gradQ, Tensor gradK, Tensor gradV, Tensor gradQkv,
                            Tensor gradQWeight, Tensor gradKWeight) {
        String op = "qkNormRopeBackward";
        QkvInputs in = args.qkvInputs(op, qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin);
        CpuAttention.Layout l = in.layout();
        CpuTensor gq = args.headTensor(op, "gradQ", gradQ, l, "qkv", in.qkv());
        CpuTensor gk = args.headTensor(op, "gradK", gradK, l, "qkv", in.qkv());
        CpuTensor gv = args.headTensor(op, "gradV", gradV, l, "qkv", in.qkv());
        boolean qkNorm = in.qWeight() != null;
        CpuTensor r = null;
        if (qkNorm) {
            Objects.requireNonNull(rstd, () -> op + ": rstd is null; with qk-norm on the backward needs the ρ saved "
                    + "by the forward");
            r = args.qkRstd(op, rstd, in);
        } else if (gradQWeight != null || gradKWeight != null) {
            throw new IllegalArgumentException(op + ": gradQWeight/gradKWeight were given but qk-norm is off "
                    + "(qWeight and kWeight are null), so there are no weights to differentiate");
        }
        CpuTensor gqkv = null, gqw = null, gkw = null;
        if (gradQkv != null) {
            gqkv = args.f32(op, "gradQkv", gradQkv);
            Shapes.requireSame(op + " (gradQkv vs qkv)", gqkv, in.qkv());
            requireNoSharing(op, gqkv, in.qkv(), in.qWeight(), in.kWeight(), in.cos(), in.sin(), r, gq, gk, gv);
        }
        if (gradQWeight != null) {
            gqw = args.f32(op, "gradQWeight", gradQWeight);
            Shapes.requireSame(op + " (gradQWeight vs qWeight)", gqw, in.qWeight());
            requireNoSharing(op, gqw, in.qkv(), in.qWeight(), in.kWeight(), in.cos(), in.sin(), r, gq, gk, gv, gqkv);
        }
        if (gradKWeight != null) {
            gkw = args.f32(op, "gradKWeight", gradKWeight);
            Shapes.requireSame(op + " (gradKWeight vs kWeight)", gkw, in.kWeight());
            requireNoSharing(op, gkw, in.qkv(), in.qWeight(), in.kWeight(), in.cos(), in.sin(), r, gq, gk, gv, gqkv,
                    gqw);
        }
        CpuAttention.qkNormRopeBackward(args.parallel(), l, in.qkv().f32(), array(in.qWeight()), array(in.kWeight()),
                array(in.cos()), array(in.sin()), array(r), gq.f32(), gk.f32(), gv.f32(), array(gqkv), array(gqw),
                array(gkw));
    }

    void attentionBackward(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse, Tensor gradOut,
                           Tensor gradQ, Tensor gradK, Tensor gradV) {
        String op = "attentionBackward";
        AttentionInputs in = args.attentionInputs(op, q, k, v, scale, out);
        Objects.requireNonNull(lse, () -> op + ": lse is null; the backward recomputes the probabilities from it");
        CpuTensor l = args.lse(op, lse, in);
        CpuTensor g = args.require(op, "gradOut", gradOut);
        NetworkChecks.attentionActivation(op, "gradOut", g, in.q());
        Shapes.requireSame(op + " (gradOut vs out)", g, in.out());
        CpuTensor[] grads = new CpuTensor[3];
        String[] roles = {"gradQ", "gradK", "gradV"};
        Tensor[] given = {gradQ, gradK, gradV};
        for (int i = 0; i < 3; i++) {
            if (given[i] != null) {
                grads[i] = args.headTensor(op, roles[i], given[i], in.layout(), "q", in.q());
                requireNoSharing(op, grads[i], in.q(), in.k(), in.v(), in.out(), l, g);
                for (int j = 0; j < i; j++) {
                    requireNoSharing(op, grads[i], grads[j]);
                }
            }
        }
        CpuAttentionBackward.attentionBackward(args.parallel(), in.layout(), CpuAttention.inputFloats(in.q()),
                CpuAttention.inputFloats(in.k()), CpuAttention.inputFloats(in.v()), scale,
                CpuAttention.inputFloats(in.out()), l.f32(), CpuAttention.inputFloats(g), array(grads[0]),
                array(grads[1]), array(grads[2]));
    }

    // ---------------------------------------------------------------- MLP

    /** SiLU(g) = g·σ(g), SiLU'(g) = σ(g)·(1 + g·(1 − σ(g))) (§3.2 SwiGLU). */
    void swigluBackward(Tensor gu, Tensor gradOut, Tensor gradGu) {
        String op = "swigluBackward";
        CpuTensor in = args.f32(op, "gu", gu);
        CpuTensor g = args.f32(op, "gradOut", gradOut);
        int f = args.swigluWidth(op, in, "gradOut", g);
        if (gradGu == null) {
            return;
        }
        CpuTensor o = args.f32(op, "gradGu", gradGu);
        Shapes.requireSame(op + " (gradGu vs gu)", o, in);
        requireNoSharing(op, o, in, g);
        CpuSwiglu.backward(args.parallel(), in.f32(), g.f32(), o.f32(), (int) (g.numel() / Math.max(1, f)), f);
    }

    /** gradIn = gradOut·σ(x)·(1 + x·(1 − σ(x))); elementwise, so gradIn may be gradOut or x. */
    void siluBackward(Tensor x, Tensor gradOut, Tensor gradIn) {
        String op = "siluBackward";
        CpuTensor in = args.f32(op, "x", x);
        CpuTensor g = args.f32(op, "gradOut", gradOut);
        Shapes.requireSame(op + " (gradOut vs x)", g, in);
        if (gradIn == null) {
            return;
        }
        CpuTensor o = args.f32(op, "gradIn", gradIn);
        Shapes.requireSame(op + " (gradIn vs x)", o, in);
        float[] xs = in.f32(), gs = g.f32(), os = o.f32();
        args.parallel().forRange(in.numel(), CpuNetworkOps.ELEMENTS_PER_TASK, (s, e) -> {
            for (int i = (int) s; i < e; i++) {
                double xi = xs[i];
                double sigma = 1.0 / (1.0 + Math.exp(-xi));
                os[i] = (float) (gs[i] * sigma * (1.0 + xi * (1.0 - sigma)));
            }
        });
    }
}
