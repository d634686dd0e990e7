package facm.port;

import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

import static facm.port.KernelFamilies.FP32_TOL;
import static facm.port.KernelFamilies.ROUNDED_TOL;
import static facm.port.KernelFamilies.row;
import static facm.port.NetworkFamilies.CHUNKS;
import static facm.port.NetworkFamilies.EPS;
import static facm.port.NetworkFamilies.act;
import static facm.port.NetworkFamilies.heads;
import static facm.port.NetworkFamilies.image;
import static facm.port.NetworkFamilies.net;
import static facm.port.NetworkFamilies.tokens;

/**
 * The port-check rows of the {@link facm.tensor.NetworkOps} backward (reverse-mode) and JVP (forward-mode) ops. A
 * backward case runs the forward op in its preparation for what the backward reads (rstd, lse, out), so only the
 * backward kernel is timed; accumulated parameter gradients start from random values.
 */
final class NetworkGradFamilies {
    private NetworkGradFamilies() {
    }

    /** Attention FLOPs per (batch, head) and T²·dh: forward 4 (two products), backward 10 (five), JVP 12 (six). */
    private static FlopCount attentionFlops(double perT2dh) {
        return d -> perT2dh * d.batch() * d.heads() * d.tokens() * d.tokens() * d.headDim();
    }

    static List<KernelFamily> all() {
        List<KernelFamily> l = new ArrayList<>();
        l.add(row("patchify", Pass.BACKWARD, "", DType.F32, "embed", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor g = in.f32("gradTokens", -1f, 1f, tokens(d));
            Tensor gx = in.out("gradX", image(d));
            return Prepared.of(() -> net(in).patchifyBackward(g, d.patch(), gx), gx);
        }));
        l.add(row("unpatchify", Pass.BACKWARD, "", DType.F32, "embed", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor g = in.f32("gradOut", -1f, 1f, image(d));
            Tensor gt = in.out("gradTokens", tokens(d));
            return Prepared.of(() -> net(in).unpatchifyBackward(g, d.patch(), gt), gt);
        }));
        l.add(row("embedding", Pass.BACKWARD, "", DType.F32, "embed", Variant.ATOMIC, FP32_TOL, null, (in, d) -> {
            Tensor g = in.f32("gradOut", -1f, 1f, d.batch(), d.width());
            Tensor ids = in.ints("ids", Math.max(2, d.classes() / 4), d.batch()); // repeated ids: rows must add up
            Tensor table = in.accumulator("gradTable", d.classes(), d.width());
            return Prepared.of(() -> net(in).embeddingBackward(g, ids, table), table);
        }));
        l.add(row("silu", Pass.BACKWARD, "", DType.F32, "swiglu", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor x = in.f32("x", -4f, 4f, d.batch(), d.width());
            Tensor g = in.f32("gradOut", -1f, 1f, d.batch(), d.width());
            Tensor gi = in.out("gradIn", d.batch(), d.width());
            return Prepared.of(() -> net(in).siluBackward(x, g, gi), gi);
        }));
        l.add(row("timestep_embedding", Pass.JVP, "", DType.F32, "embed", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor t = in.f32("t", 0f, 1f, d.batch());
            Tensor td = in.f32("tDot", -1f, 1f, d.batch());
            Tensor out = in.out("features", d.batch(), d.width());
            Tensor outDot = in.out("featuresDot", d.batch(), d.width());
            return Prepared.of(() -> net(in).timestepEmbeddingJvp(t, td, 10000f, out, outDot), out, outDot);
        }));
        l.add(row("silu", Pass.JVP, "", DType.F32, "elementwise", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor x = in.f32("x", -4f, 4f, d.batch(), d.width());
            Tensor xd = in.f32("xDot", -1f, 1f, d.batch(), d.width());
            Tensor out = in.out("out", d.batch(), d.width());
            Tensor outDot = in.out("outDot", d.batch(), d.width());
            return Prepared.of(() -> net(in).siluJvp(x, xd, out, outDot), out, outDot);
        }));
        for (DType dt : NetworkFamilies.both()) {
            double tol = dt == DType.BF16 ? ROUNDED_TOL : FP32_TOL;
            l.addAll(typed(dt, tol));
        }
        return l;
    }

    private static List<KernelFamily> typed(DType dt, double tol) {
        List<KernelFamily> l = new ArrayList<>();
        // Backward ops read F32 gradients; their bf16 rows only exist where the op documents bf16 saved inputs, so
        // the bf16 rows below are the activation-carrying ones (gated residual's a, qkv, attention, swiglu's gu).
        if (dt == DType.F32) {
            l.add(row("rmsnorm", Pass.BACKWARD, "modulated", dt, "rmsnorm", Variant.REDUCTION, tol, null, (in, d) -> {
                NetworkFamilies.Norm n = NetworkFamilies.Norm.make(in, d);
                Tensor fwd = in.out(DType.F32, "out", act(d));
                net(in).rmsNormModulate(n.x(), n.w(), EPS, n.mod(), 0, 1, fwd, n.rstd());
                Tensor g = in.f32("gradOut", -1f, 1f, act(d));
                Tensor gx = in.out("gradX", act(d));
                Tensor gw = in.accumulator("gradWeight", d.width());
                Tensor gm = in.accumulator("gradMod", d.batch(), CHUNKS * d.width());
                return Prepared.of(() -> net(in).rmsNormModulateBackward(n.x(), n.w(), EPS, n.mod(), 0, 1, n.rstd(),
                        g, gx, gw, gm), gx, gw, gm);
            }));
            l.add(row("rmsnorm", Pass.JVP, "modulated", dt, "rmsnorm", Variant.ROWS, tol, null, (in, d) -> {
                NetworkFamilies.Norm n = NetworkFamilies.Norm.make(in, d);
                Tensor xd = in.f32("xDot", -1f, 1f, act(d));
                Tensor md = in.f32("modDot", -0.5f, 0.5f, d.batch(), CHUNKS * d.width());
                Tensor out = in.out("out", act(d));
                Tensor outDot = in.out("outDot", act(d));
                return Prepared.of(() -> net(in).rmsNormModulateJvp(n.x(), xd, n.w(), EPS, n.mod(), md, 0, 1, out,
                        outDot, n.rstd()), out, outDot, n.rstd());
            }));
            l.add(row("gated_residual", Pass.BACKWARD, "", dt, "adaln", Variant.REDUCTION, tol, null, (in, d) -> {
                Tensor a = in.f32("a", -2f, 2f, act(d));
                Tensor mod = in.f32("mod", -1f, 1f, d.batch(), CHUNKS * d.width());
                Tensor gh = in.f32("gradH", -1f, 1f, act(d));
                Tensor ga = in.out("gradA", act(d));
                Tensor gm = in.accumulator("gradMod", d.batch(), CHUNKS * d.width());
                return Prepared.of(() -> net(in).gatedResidualBackward(a, mod, 2, gh, ga, gm), ga, gm);
            }));
            l.add(row("gated_residual", Pass.JVP, "", dt, "adaln", Variant.ROWS, tol, null, (in, d) -> {
                Tensor h = in.f32("h", -2f, 2f, act(d));
                Tensor hd = in.f32("hDot", -1f, 1f, act(d));
                Tensor a = in.f32("a", -2f, 2f, act(d));
                Tensor ad = in.f32("aDot", -1f, 1f, act(d));
                Tensor mod = in.f32("mod", -1f, 1f, d.batch(), CHUNKS * d.width());
                Tensor md = in.f32("modDot", -1f, 1f, d.batch(), CHUNKS * d.width());
                return Prepared.of(() -> net(in).gatedResidualJvp(h, hd, a, ad, mod, md, 2), h, hd);
            }));
            l.add(row("swiglu", Pass.BACKWARD, "", dt, "swiglu", Variant.ROWS, tol, null, (in, d) -> {
                Tensor gu = in.f32("gu", -3f, 3f, d.rows(), 2 * d.hidden());
                Tensor g = in.f32("gradOut", -1f, 1f, d.rows(), d.hidden());
                Tensor ggu = in.out("gradGu", d.rows(), 2 * d.hidden());
                return Prepared.of(() -> net(in).swigluBackward(gu, g, ggu), ggu);
            }));
            l.add(row("swiglu", Pass.JVP, "", dt, "swiglu", Variant.ROWS, tol, null, (in, d) -> {
                Tensor gu = in.f32("gu", -3f, 3f, d.rows(), 2 * d.hidden());
                Tensor gud = in.f32("guDot", -1f, 1f, d.rows(), 2 * d.hidden());
                Tensor out = in.out("out", d.rows(), d.hidden());
                Tensor outDot = in.out("outDot", d.rows(), d.hidden());
                return Prepared.of(() -> net(in).swigluJvp(gu, gud, out, outDot), out, outDot);
            }));
            l.add(row("qk_norm_rope", Pass.BACKWARD, "", dt, "rope_grad", Variant.ROWS, tol, null, (in, d) -> {
                NetworkFamilies.Rope r = NetworkFamilies.Rope.make(in, d);
                net(in).qkNormRope(r.qkv(), d.heads(), r.qw(), r.kw(), EPS, r.cos(), r.sin(), r.q(), r.k(), r.v(),
                        r.rstd());
                Tensor gq = in.f32("gradQ", -1f, 1f, heads(d));
                Tensor gk = in.f32("gradK", -1f, 1f, heads(d));
                Tensor gv = in.f32("gradV", -1f, 1f, heads(d));
                Tensor gqkv = in.out("gradQkv", d.batch(), d.tokens(), 3 * d.attentionWidth());
                Tensor gqw = in.accumulator("gradQWeight", d.headDim());
                Tensor gkw = in.accumulator("gradKWeight", d.headDim());
                return Prepared.of(() -> net(in).qkNormRopeBackward(r.qkv(), d.heads(), r.qw(), r.kw(), EPS, r.cos(),
                        r.sin(), r.rstd(), gq, gk, gv, gqkv, gqw, gkw), gqkv, gqw, gkw);
            }));
        }
        l.add(row("qk_norm_rope", Pass.JVP, "", dt, "rope_grad", Variant.ROWS, tol, null, (in, d) -> {
            // The JVP reads the f32 qkv and its tangent in every form; the bf16 form writes bf16 heads and tangents.
            NetworkFamilies.Rope r = NetworkFamilies.Rope.make(in, d,
                    in.f32("qkv", -2f, 2f, d.batch(), d.tokens(), 3 * d.attentionWidth()));
            Tensor qkvDot = in.f32("qkvDot", -1f, 1f, d.batch(), d.tokens(), 3 * d.attentionWidth());
            Tensor qd = in.out("qDot", heads(d));
            Tensor kd = in.out("kDot", heads(d));
            Tensor vd = in.out("vDot", heads(d));
            return Prepared.of(() -> net(in).qkNormRopeJvp(r.qkv(), qkvDot, d.heads(), r.qw(), r.kw(), EPS, r.cos(),
                    r.sin(), r.q(), r.k(), r.v(), qd, kd, vd, r.rstd()), r.q(), r.k(), r.v(), qd, kd, vd, r.rstd());
        }));
        l.add(row("attention", Pass.BACKWARD, "", dt, "attention", Variant.ATTENTION, tol, attentionFlops(10),
                (in, d) -> {
            NetworkFamilies.Attn a = NetworkFamilies.Attn.make(in, d);
            net(in).attention(a.q(), a.k(), a.v(), a.scale(), a.out(), a.lse());
            // Gradients of q, k, v are f32 in every form (the bf16 form reads bf16 q, k, v and out).
            Tensor g = in.act("gradOut", -1f, 1f, d.batch(), d.tokens(), d.attentionWidth());
            Tensor gq = in.out(DType.F32, "gradQ", heads(d));
            Tensor gk = in.out(DType.F32, "gradK", heads(d));
            Tensor gv = in.out(DType.F32, "gradV", heads(d));
            return Prepared.of(() -> net(in).attentionBackward(a.q(), a.k(), a.v(), a.scale(), a.out(), a.lse(), g,
                    gq, gk, gv), gq, gk, gv);
        }));
        l.add(row("attention", Pass.JVP, "", dt, "attention_jvp", Variant.ATTENTION, tol, attentionFlops(12),
                (in, d) -> {
            NetworkFamilies.Attn a = NetworkFamilies.Attn.make(in, d);
            Tensor qd = in.act("qDot", -1f, 1f, heads(d));
            Tensor kd = in.act("kDot", -1f, 1f, heads(d));
            Tensor vd = in.act("vDot", -1f, 1f, heads(d));
            Tensor outDot = in.out("outDot", d.batch(), d.tokens(), d.attentionWidth());
            return Prepared.of(() -> net(in).attentionJvp(a.q(), a.k(), a.v(), qd, kd, vd, a.scale(), a.out(), outDot,
                    a.lse()), a.out(), outDot, a.lse());
        }));
        return l;
    }
}
