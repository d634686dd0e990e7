package facm.port;

import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

import static facm.port.KernelFamilies.FP32_TOL;
import static facm.port.KernelFamilies.ROUNDED_TOL;
import static facm.port.KernelFamilies.row;

/**
 * The port-check rows of the {@link NetworkOps} forward ops, with the shared input recipes the backward and JVP rows
 * ({@link NetworkGradFamilies}) reuse. Ops that accept bf16 activations get a bf16 row too; a backend that refuses
 * bf16 for an op makes that row "skipped", not failed.
 */
final class NetworkFamilies {
    static final float EPS = 1e-6f;
    /** adaLN chunk layout of a block: shift 0, scale 1, gate 2 (of K = 6). */
    static final int CHUNKS = 6;

    private NetworkFamilies() {
    }

    static List<KernelFamily> all() {
        List<KernelFamily> l = new ArrayList<>();
        l.add(row("patchify", Pass.FORWARD, "", DType.F32, "embed", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor x = in.f32("x", -1f, 1f, image(d));
            Tensor out = in.out("tokens", tokens(d));
            return Prepared.of(() -> net(in).patchify(x, d.patch(), out), out);
        }));
        l.add(row("unpatchify", Pass.FORWARD, "", DType.F32, "embed", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor t = in.f32("tokens", -1f, 1f, tokens(d));
            Tensor out = in.out("x", image(d));
            return Prepared.of(() -> net(in).unpatchify(t, d.patch(), out), out);
        }));
        l.add(row("timestep_embedding", Pass.FORWARD, "", DType.F32, "embed", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor t = in.f32("t", 0f, 1f, d.batch());
            Tensor out = in.out("features", d.batch(), d.width());
            return Prepared.of(() -> net(in).timestepEmbedding(t, 10000f, out), out);
        }));
        l.add(row("embedding", Pass.FORWARD, "", DType.F32, "embed", Variant.SIMT, FP32_TOL, null, (in, d) -> {
            Tensor table = in.f32("table", -1f, 1f, d.classes(), d.width());
            Tensor ids = in.ints("ids", d.classes(), d.batch());
            Tensor out = in.out("rows", d.batch(), d.width());
            return Prepared.of(() -> net(in).embedding(table, ids, out), out);
        }));
        for (DType dt : both()) {
            double tol = dt == DType.BF16 ? ROUNDED_TOL : FP32_TOL;
            l.add(row("rmsnorm", Pass.FORWARD, "plain", dt, "rmsnorm", Variant.ROWS, tol, null, (in, d) -> {
                Tensor x = in.f32("x", -2f, 2f, d.rows(), d.width());
                Tensor w = in.f32("weight", 0.5f, 1.5f, d.width());
                Tensor out = in.out("out", d.rows(), d.width());
                Tensor rstd = in.out(DType.F32, "rstd", d.rows());
                return Prepared.of(() -> net(in).rmsNormModulate(x, w, EPS, null, 0, 0, out, rstd), out, rstd);
            }));
            l.add(row("rmsnorm", Pass.FORWARD, "modulated", dt, "rmsnorm", Variant.ROWS, tol, null, (in, d) -> {
                Norm n = Norm.make(in, d);
                Tensor out = in.out("out", act(d));
                return Prepared.of(() -> net(in).rmsNormModulate(n.x, n.w, EPS, n.mod, 0, 1, out, n.rstd), out, n.rstd);
            }));
            l.add(row("gated_residual", Pass.FORWARD, "", dt, "adaln", Variant.ROWS, tol, null, (in, d) -> {
                Tensor h = in.f32("h", -2f, 2f, act(d));
                Tensor a = in.act("a", -2f, 2f, act(d));
                Tensor mod = in.f32("mod", -1f, 1f, d.batch(), CHUNKS * d.width());
                return Prepared.of(() -> net(in).gatedResidual(h, a, mod, 2), h);
            }));
            l.add(row("qk_norm_rope", Pass.FORWARD, "", dt, "rope", Variant.ROWS, tol, null, (in, d) -> {
                Rope r = Rope.make(in, d);
                return Prepared.of(() -> net(in).qkNormRope(r.qkv, d.heads(), r.qw, r.kw, EPS, r.cos, r.sin, r.q,
                        r.k, r.v, r.rstd), r.q, r.k, r.v, r.rstd);
            }));
            l.add(row("attention", Pass.FORWARD, "", dt, "attention", Variant.ATTENTION, tol,
                    d -> 4.0 * d.batch() * d.heads() * d.tokens() * d.tokens() * d.headDim(), (in, d) -> {
                Attn a = Attn.make(in, d);
                return Prepared.of(() -> net(in).attention(a.q, a.k, a.v, a.scale, a.out, a.lse), a.out, a.lse);
            }));
            l.add(row("swiglu", Pass.FORWARD, "", dt, "swiglu", Variant.ROWS, tol, null, (in, d) -> {
                Tensor gu = in.act("gu", -3f, 3f, d.rows(), 2 * d.hidden());
                Tensor out = in.out("out", d.rows(), d.hidden());
                return Prepared.of(() -> net(in).swiglu(gu, out), out);
            }));
        }
        return l;
    }

    static List<DType> both() {
        return List.of(DType.F32, DType.BF16);
    }

    static NetworkOps net(CaseInputs in) {
        return in.backend().network();
    }

    static int[] image(Dims d) {
        return new int[] {d.batch(), d.channels(), d.image(), d.image()};
    }

    static int[] tokens(Dims d) {
        return new int[] {d.batch(), d.patchTokens(), d.channels() * d.patch() * d.patch()};
    }

    static int[] act(Dims d) {
        return new int[] {d.batch(), d.tokens(), d.width()};
    }

    static int[] heads(Dims d) {
        return new int[] {d.batch(), d.heads(), d.tokens(), d.headDim()};
    }

    /** RMSNorm inputs: x F32 (the residual stream), weight, a block's modulation vector, rstd. */
    record Norm(Tensor x, Tensor w, Tensor mod, Tensor rstd) {
        static Norm make(CaseInputs in, Dims d) {
            return new Norm(in.f32("x", -2f, 2f, act(d)), in.f32("weight", 0.5f, 1.5f, d.width()),
                    in.f32("mod", -0.5f, 0.5f, d.batch(), CHUNKS * d.width()), in.out(DType.F32, "rstd", d.rows()));
        }
    }

    /** qk-norm + RoPE inputs: qkv in the case dtype, weights, cos/sin tables [T, dh], outputs q/k/v and rstd. */
    record Rope(Tensor qkv, Tensor qw, Tensor kw, Tensor cos, Tensor sin, Tensor q, Tensor k, Tensor v, Tensor rstd) {
        static Rope make(CaseInputs in, Dims d) {
            return make(in, d, in.act("qkv", -2f, 2f, d.batch(), d.tokens(), 3 * d.attentionWidth()));
        }

        /** With a given qkv (the JVP's bf16 form reads an f32 qkv and writes bf16 heads). */
        static Rope make(CaseInputs in, Dims d, Tensor qkv) {
            return new Rope(qkv,
                    in.f32("qWeight", 0.5f, 1.5f, d.headDim()), in.f32("kWeight", 0.5f, 1.5f, d.headDim()),
                    in.f32("ropeCos", -1f, 1f, d.tokens(), d.headDim()), in.f32("ropeSin", -1f, 1f, d.tokens(), d.headDim()),
                    in.out("q", heads(d)), in.out("k", heads(d)), in.out("v", heads(d)),
                    in.out(DType.F32, "rstd", d.batch(), d.tokens(), 2, d.heads()));
        }
    }

    /** Attention inputs in the case dtype, scale 1/√dh, out [B,T,H·dh] and lse [B,H,T]. */
    record Attn(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse) {
        static Attn make(CaseInputs in, Dims d) {
            return new Attn(in.act("q", -1.5f, 1.5f, heads(d)), in.act("k", -1.5f, 1.5f, heads(d)),
                    in.act("v", -1f, 1f, heads(d)), (float) (1 / Math.sqrt(d.headDim())), in.out("out", d.batch(), d.tokens(), d.attentionWidth()),
                    in.out(DType.F32, "lse", d.batch(), d.heads(), d.tokens()));
        }
    }
}
