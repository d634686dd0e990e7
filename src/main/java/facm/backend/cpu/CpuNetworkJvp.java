package facm.backend.cpu;

import static facm.backend.cpu.CpuNetworkArgs.array;
import static facm.tensor.NetworkChecks.requireChunks;
import static facm.tensor.Shapes.requireNoSharing;
import static facm.tensor.Shapes.requireRank;

import facm.backend.cpu.CpuNetworkArgs.AttentionInputs;
import facm.backend.cpu.CpuNetworkArgs.NormInputs;
import facm.backend.cpu.CpuNetworkArgs.QkvInputs;
import facm.tensor.NetworkChecks;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Arrays;
import java.util.Objects;

/**
 * The forward-mode (JVP) twins of {@link CpuNetworkOps} (contracts in {@link facm.tensor.NetworkOps}, rules in
 * facm-spec §6.2/§6.4): argument checks here, loops in {@link CpuNorms} and {@link CpuAttentionJvp}, the small
 * elementwise ones here.
 *
 * <p>Primal: bit-identical to the forward op, because it runs the forward's own loop ({@link CpuNorms},
 * {@link CpuAttention}, {@link CpuNetworkOps#timestepEmbedding}, {@link CpuNetworkOps#swiglu}) or, where primal and
 * tangent are fused (attention, SiLU), the forward's statements in the same order. Tangent: float64 per element or
 * row, rounded to fp32 once; every sum in an order fixed by the shapes, so results do not depend on thread count.
 *
 * <p>Every argument is checked before anything is written. A null tangent input is a zero tangent; tangent outputs
 * are required. Aliasing follows the forward ops: the primal in-place forms stay allowed (rmsNormModulate's out = x,
 * gatedResidual's a = h, SiLU's out = x) and their tangent twins likewise (outDot = xDot, aDot = hDot,
 * outDot = xDot); any other tangent output must not share storage with another argument.
 */
final class CpuNetworkJvp {
    private final CpuNetworkOps forward;
    private final CpuNetworkArgs args;

    CpuNetworkJvp(CpuNetworkOps forward, CpuNetworkArgs args) {
        this.forward = Objects.requireNonNull(forward, "CpuNetworkJvp: forward is null");
        this.args = Objects.requireNonNull(args, "CpuNetworkJvp: args is null");
    }

    // ---------------------------------------------------------------- time features, SiLU

    /** Primal by the forward op, then outDot = [−f·sin(t f), f·cos(t f)]·tDot_b with f, t·f formed as the forward does. */
    void timestepEmbeddingJvp(Tensor t, Tensor tDot, float maxPeriod, Tensor out, Tensor outDot) {
        String op = "timestepEmbeddingJvp";
        CpuTensor times = args.f32(op, "t", t);
        CpuTensor o = args.f32(op, "out", out);
        CpuTensor od = args.f32(op, "outDot", outDot);
        Shapes.requireSame(op + " (outDot vs out)", od, o);
        CpuTensor td = null;
        if (tDot != null) {
            td = args.f32(op, "tDot", tDot);
            Shapes.requireSame(op + " (tDot vs t)", td, times);
            requireNoSharing(op, o, td);
        }
        requireNoSharing(op, od, times, td, o);
        forward.timestepEmbedding(times, maxPeriod, o);
        float[] ods = od.f32();
        if (td == null) {
            Arrays.fill(ods, 0f);
            return;
        }
        int b = times.dim(0), dim = o.dim(1), half = dim / 2;
        double logPeriod = Math.log(maxPeriod);
        float[] ts = times.f32(), tds = td.f32();
        args.parallel().forRange(b, CpuNetworkOps.grain(dim * 16L), (s, e) -> {
            for (int r = (int) s; r < e; r++) {
                double tr = ts[r], tDotR = tds[r];
                for (int k = 0; k < half; k++) {
                    double f = Math.exp(-logPeriod * k / half);
                    double arg = tr * f;
                    ods[r * dim + k] = (float) (-f * Math.sin(arg) * tDotR);
                    ods[r * dim + half + k] = (float) (f * Math.cos(arg) * tDotR);
                }
            }
        });
    }

    /**
     * out = SiLU(x) by the statement of the backend's unary SILU (x / (1 + e^−x)), outDot = σ(x)(1 + x(1 − σ(x)))·ẋ.
     * Elementwise and fused, so out may be x and outDot may be xDot (each element is read before it is written).
     */
    void siluJvp(Tensor x, Tensor xDot, Tensor out, Tensor outDot) {
        String op = "siluJvp";
        CpuTensor in = args.f32(op, "x", x);
        CpuTensor o = args.f32(op, "out", out);
        CpuTensor od = args.f32(op, "outDot", outDot);
        Shapes.requireSame(op + " (out vs x)", o, in);
        Shapes.requireSame(op + " (outDot vs x)", od, in);
        CpuTensor xd = null;
        if (xDot != null) {
            xd = args.f32(op, "xDot", xDot);
            Shapes.requireSame(op + " (xDot vs x)", xd, in);
            requireNoSharing(op, o, xd);
        }
        requireNoSharing(op, od, in, o);
        float[] xs = in.f32(), xds = array(xd), os = o.f32(), ods = od.f32();
        args.parallel().forRange(in.numel(), CpuNetworkOps.ELEMENTS_PER_TASK, (s, e) -> {
            for (int i = (int) s; i < e; i++) {
                double v = xs[i];
                double tangentIn = xds == null ? 0.0 : xds[i];
                double sigma = 1.0 / (1.0 + Math.exp(-v));
                os[i] = (float) (v / (1.0 + Math.exp(-v)));
                // A zero tangent gives +0 (not −0 for negative slopes), as the other ops' zero fill does.
                ods[i] = xds == null ? 0f : (float) (sigma * (1.0 + v * (1.0 - sigma)) * tangentIn);
            }
        });
    }

    // ---------------------------------------------------------------- norms and modulation

    /** Checks as the forward, then the tangent ({@link CpuNorms#rmsNormModulateTangent}), then the forward's loop. */
    void rmsNormModulateJvp(Tensor x, Tensor xDot, Tensor weight, float eps, Tensor mod, Tensor modDot,
                            int shiftChunk, int scaleChunk, Tensor out, Tensor outDot, Tensor rstd) {
        String op = "rmsNormModulateJvp";
        NormInputs in = args.normInputs(op, x, weight, mod, shiftChunk, scaleChunk);
        CpuTensor o = args.f32(op, "out", out);
        Shapes.requireSame(op + " (out vs x)", o, in.x());
        CpuTensor od = args.f32(op, "outDot", outDot);
        Shapes.requireSame(op + " (outDot vs x)", od, in.x());
        if (!(eps >= 0) || Float.isInfinite(eps)) {
            throw new IllegalArgumentException(op + ": eps must be finite and >= 0, got " + eps);
        }
        CpuTensor xd = null, md = null, r = null;
        if (xDot != null) {
            xd = args.f32(op, "xDot", xDot);
            Shapes.requireSame(op + " (xDot vs x)", xd, in.x());
        }
        if (modDot != null) {
            if (in.mod() == null) {
                throw new IllegalArgumentException(op + ": modDot " + modDot.describe() + " was given but mod is null "
                        + "(plain RMSNorm), so there is no modulation tangent to apply");
            }
            md = args.f32(op, "modDot", modDot);
            Shapes.requireSame(op + " (modDot vs mod)", md, in.mod());
        }
        if (rstd != null) {
            r = args.rowRstd(op, rstd, in);
            requireNoSharing(op, r, in.x(), xd, in.weight(), in.mod(), md, o, od);
        }
        requireNoSharing(op, o, in.weight(), in.mod(), xd, md, od);
        requireNoSharing(op, od, in.x(), in.weight(), in.mod(), md);
        // Tangent first: the forward may overwrite x (out = x), which the tangent still reads.
        if (xd == null && md == null) {
            Arrays.fill(od.f32(), 0f);
        } else {
            CpuNorms.rmsNormModulateTangent(args.parallel(), in.x().f32(), array(xd), in.weight().f32(), eps,
                    array(in.mod()), array(md), in.modWidth(), shiftChunk, scaleChunk, in.rows(), in.tokens(),
                    in.d(), od.f32());
        }
        CpuNorms.rmsNormModulate(args.parallel(), in.x().f32(), in.weight().f32(), eps, array(in.mod()),
                in.modWidth(), shiftChunk, scaleChunk, in.rows(), in.tokens(), in.d(), o.f32(), array(r));
    }

    /** Checks as the forward, then hDot += gateDot ⊙ a + gate ⊙ aDot, then the forward's h += gate ⊙ a. */
    void gatedResidualJvp(Tensor h, Tensor hDot, Tensor a, Tensor aDot, Tensor mod, Tensor modDot, int gateChunk) {
        String op = "gatedResidualJvp";
        CpuTensor hs = args.f32(op, "h", h);
        CpuTensor hd = args.f32(op, "hDot", hDot);
        CpuTensor as = args.f32(op, "a", a);
        CpuTensor m = args.f32(op, "mod", mod);
        requireRank(op, "h [B,T,D]", hs, 3);
        Shapes.requireSame(op + " (a vs h)", as, hs);
        Shapes.requireSame(op + " (hDot vs h)", hd, hs);
        int d = hs.dim(2);
        requireChunks(op, m, hs.dim(0), d, new String[] {"gateChunk"}, gateChunk);
        CpuTensor ad = null, md = null;
        if (aDot != null) {
            ad = args.f32(op, "aDot", aDot);
            Shapes.requireSame(op + " (aDot vs h)", ad, hs);
        }
        if (modDot != null) {
            md = args.f32(op, "modDot", modDot);
            Shapes.requireSame(op + " (modDot vs mod)", md, m);
        }
        requireNoSharing(op, hs, m, hd, ad, md);
        requireNoSharing(op, hd, as, m, md);
        // Tangent first: with a = h the forward changes a, which the tangent reads.
        CpuNorms.gatedResidualTangent(args.parallel(), hd.f32(), as.f32(), array(ad), m.f32(), array(md), m.dim(1),
                gateChunk, hs.dim(1), d);
        CpuNorms.gatedResidual(args.parallel(), hs.f32(), as.f32(), m.f32(), m.dim(1), gateChunk, hs.dim(1), d);
    }

    // ---------------------------------------------------------------- attention

    /** Checks as the forward, then the forward's loop (q, k, v, rstd) and the tangent loop (qDot, kDot, vDot). */
    void qkNormRopeJvp(Tensor qkv, Tensor qkvDot, int heads, Tensor qWeight, Tensor kWeight, float eps,
                       Tensor ropeCos, Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot,
                       Tensor vDot, Tensor rstd) {
        String op = "qkNormRopeJvp";
        QkvInputs in = args.qkvInputs(op, qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin);
        CpuAttention.Layout l = in.layout();
        CpuTensor qd = null;
        if (qkvDot != null) {
            qd = args.f32(op, "qkvDot", qkvDot);
            Shapes.requireSame(op + " (qkvDot vs qkv)", qd, in.qkv());
        }
        String[] roles = {"q", "k", "v", "qDot", "kDot", "vDot"};
        Tensor[] given = {q, k, v, qDot, kDot, vDot};
        CpuTensor[] outs = new CpuTensor[given.length];
        for (int i = 0; i < given.length; i++) {
            outs[i] = args.headTensor(op, roles[i], given[i], l, "qkv", in.qkv());
            requireNoSharing(op, outs[i], in.qkv(), qd, in.qWeight(), in.kWeight(), in.cos(), in.sin());
            for (int j = 0; j < i; j++) {
                requireNoSharing(op, outs[i], outs[j]);
            }
        }
        CpuTensor r = null;
        if (rstd != null) {
            if (in.qWeight() == null) {
                throw new IllegalArgumentException(op + ": rstd " + rstd.describe() + " was given but qk-norm is off "
                        + "(qWeight and kWeight are null), so there is no ρ to save");
            }
            r = args.qkRstd(op, rstd, in);
            requireNoSharing(op, r, in.qkv(), qd);
            requireNoSharing(op, r, outs);
        }
        CpuAttention.qkNormRope(args.parallel(), l, in.qkv().f32(), array(in.qWeight()), array(in.kWeight()), eps,
                array(in.cos()), array(in.sin()), outs[0].f32(), outs[1].f32(), outs[2].f32(), array(r));
        CpuAttentionJvp.qkNormRopeTangent(args.parallel(), l, in.qkv().f32(), array(qd), array(in.qWeight()),
                array(in.kWeight()), eps, array(in.cos()), array(in.sin()), outs[3].f32(), outs[4].f32(),
                outs[5].f32());
    }

    /** Checks as the forward, then the fused primal + tangent loop {@link CpuAttentionJvp#attention}. */
    void attentionJvp(Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot, Tensor vDot, float scale, Tensor out,
                      Tensor outDot, Tensor lse) {
        String op = "attentionJvp";
        AttentionInputs in = args.attentionInputs(op, q, k, v, scale, out);
        CpuTensor od = args.require(op, "outDot", outDot);
        NetworkChecks.attentionActivation(op, "outDot", od, in.q());
        Shapes.requireSame(op + " (outDot vs out)", od, in.out());
        String[] roles = {"qDot", "kDot", "vDot"};
        Tensor[] given = {qDot, kDot, vDot};
        CpuTensor[] tangents = new CpuTensor[3];
        for (int i = 0; i < 3; i++) {
            if (given[i] != null) {
                tangents[i] = args.require(op, roles[i], given[i]);
                NetworkChecks.attentionTangent(op, roles[i], tangents[i], in.q());
                NetworkChecks.headTensor(op, roles[i], tangents[i], in.q().shape(), "q", in.q());
            }
        }
        CpuTensor[] inputs = {in.q(), in.k(), in.v(), tangents[0], tangents[1], tangents[2]};
        requireNoSharing(op, in.out(), inputs);
        requireNoSharing(op, od, inputs);
        requireNoSharing(op, od, in.out());
        CpuTensor l = null;
        if (lse != null) {
            l = args.lse(op, lse, in);
            requireNoSharing(op, l, inputs);
            requireNoSharing(op, l, in.out(), od);
        }
        float[] o = CpuAttention.outputFloats(in.out()), oDot = CpuAttention.outputFloats(od);
        CpuAttentionJvp.attention(args.parallel(), in.layout(), CpuAttention.inputFloats(in.q()),
                CpuAttention.inputFloats(in.k()), CpuAttention.inputFloats(in.v()),
                CpuAttention.inputFloats(tangents[0]), CpuAttention.inputFloats(tangents[1]),
                CpuAttention.inputFloats(tangents[2]), scale, o, oDot, array(l));
        CpuAttention.storeOutput(in.out(), o);
        CpuAttention.storeOutput(od, oDot);
    }

    // ---------------------------------------------------------------- MLP

    /** Primal by the forward op, then outDot = SiLU'(g)·ġ·u + SiLU(g)·u̇. */
    void swigluJvp(Tensor gu, Tensor guDot, Tensor out, Tensor outDot) {
        String op = "swigluJvp";
        CpuTensor in = args.f32(op, "gu", gu);
        CpuTensor o = args.f32(op, "out", out);
        CpuTensor od = args.f32(op, "outDot", outDot);
        int f = args.swigluWidth(op, in, "outDot", od);
        CpuTensor gd = null;
        if (guDot != null) {
            gd = args.f32(op, "guDot", guDot);
            Shapes.requireSame(op + " (guDot vs gu)", gd, in);
            requireNoSharing(op, o, gd);
        }
        requireNoSharing(op, od, in, gd, o);
        forward.swiglu(in, o);
        float[] ods = od.f32();
        if (gd == null) {
            Arrays.fill(ods, 0f);
            return;
        }
        CpuSwiglu.tangent(args.parallel(), in.f32(), gd.f32(), ods, (int) (od.numel() / Math.max(1, f)), f);
    }
}
