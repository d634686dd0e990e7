package facm.backend.cpu;

import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.ShapeException;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Objects;

/**
 * The LightningDiT layers (facm-spec.md §3) on the CPU: the reference the CUDA kernels are checked against. This class
 * checks every shape, dtype and aliasing rule and runs the simple layers; the attention pair (qk-norm/RoPE and
 * softmax attention) runs in {@link CpuAttention}, the RMSNorm/adaLN pair in {@link CpuNorms}.
 *
 * <p>Numerics, the same rule for every op: each output element is the fp32 rounding of its value computed in float64
 * from the fp32 inputs (RMS statistics, softmax sums, attention accumulation, transcendental functions). The results
 * are therefore within about one ulp of the exact function of the stored inputs, independent of thread count.
 *
 * <p>Aliasing: an op whose output is a permutation or a reduction of its inputs (patchify, unpatchify, embedding,
 * qkNormRope, attention, swiglu) rejects outputs that share storage with an input. Row-local ops allow the one
 * in-place form that is safe: rmsNormModulate's {@code out} may be {@code x}; gatedResidual's {@code a} may be
 * {@code h}.
 */
public final class CpuNetworkOps implements NetworkOps {
    /** Elements worth one task for the cheap layout and elementwise loops. */
    static final long ELEMENTS_PER_TASK = 1 << 14;

    private final CpuBackend backend;

    public CpuNetworkOps(CpuBackend backend) {
        this.backend = Objects.requireNonNull(backend, "CpuNetworkOps: backend is null");
    }

    // ---------------------------------------------------------------- layout: patches, time features, embedding

    @Override
    public void patchify(Tensor x, int patch, Tensor out) {
        String op = "patchify";
        CpuTensor in = f32(op, "x", x);
        CpuTensor o = f32(op, "out", out);
        requireRank(op, "x [B,C,H,W]", in, 4);
        int b = in.dim(0), c = in.dim(1), h = in.dim(2), w = in.dim(3);
        requirePatch(op, in, patch, h, w);
        int gw = w / patch, tokens = (h / patch) * gw, p2 = patch * patch, features = c * p2;
        Shapes.requireShape(op + ": out [B, (H/p)(W/p), C·p·p] for x " + in.describe() + ", patch " + patch, o,
                b, tokens, features);
        requireNoSharing(op, o, in);
        float[] xs = in.f32(), os = o.f32();
        backend.parallel().forRange((long) b * tokens, grain(features), (s, e) -> {
            for (long n = s; n < e; n++) {
                int bi = (int) (n / tokens), tok = (int) (n % tokens);
                int row0 = (tok / gw) * patch, col0 = (tok % gw) * patch;
                int dst = (int) n * features;
                for (int ch = 0; ch < c; ch++) {
                    for (int pr = 0; pr < patch; pr++) {
                        int src = ((bi * c + ch) * h + row0 + pr) * w + col0;
                        System.arraycopy(xs, src, os, dst + ch * p2 + pr * patch, patch);
                    }
                }
            }
        });
    }

    @Override
    public void unpatchify(Tensor tokens, int patch, Tensor out) {
        String op = "unpatchify";
        CpuTensor in = f32(op, "tokens", tokens);
        CpuTensor o = f32(op, "out", out);
        requireRank(op, "out [B,C,H,W]", o, 4);
        int b = o.dim(0), c = o.dim(1), h = o.dim(2), w = o.dim(3);
        requirePatch(op, o, patch, h, w);
        int gw = w / patch, count = (h / patch) * gw, features = patch * patch * c;
        Shapes.requireShape(op + ": tokens [B, (H/p)(W/p), p·p·C] for out " + o.describe() + ", patch " + patch,
                in, b, count, features);
        requireNoSharing(op, o, in);
        float[] ts = in.f32(), os = o.f32();
        backend.parallel().forRange((long) b * count, grain(features), (s, e) -> {
            for (long n = s; n < e; n++) {
                int bi = (int) (n / count), tok = (int) (n % count);
                int row0 = (tok / gw) * patch, col0 = (tok % gw) * patch;
                int src = (int) n * features;
                for (int pr = 0; pr < patch; pr++) {
                    for (int pc = 0; pc < patch; pc++) {
                        int from = src + (pr * patch + pc) * c;
                        int to = (bi * c * h + row0 + pr) * w + col0 + pc;
                        for (int ch = 0; ch < c; ch++) {
                            os[to + ch * h * w] = ts[from + ch];
                        }
                    }
                }
            }
        });
    }

    @Override
    public void timestepEmbedding(Tensor t, float maxPeriod, Tensor out) {
        String op = "timestepEmbedding";
        CpuTensor times = f32(op, "t", t);
        CpuTensor o = f32(op, "out", out);
        requireRank(op, "t [B]", times, 1);
        requireRank(op, "out [B, dim]", o, 2);
        int b = times.dim(0), dim = o.dim(1);
        if (o.dim(0) != b || dim < 2 || dim % 2 != 0) {
            throw new ShapeException(op + ": out " + o.describe() + " should be [B, dim] with B = " + b
                    + " (from t " + times.describe() + ") and dim even and >= 2");
        }
        if (!(maxPeriod > 0) || Float.isInfinite(maxPeriod)) {
            throw new IllegalArgumentException(op + ": maxPeriod must be finite and positive, got " + maxPeriod);
        }
        int half = dim / 2;
        double logPeriod = Math.log(maxPeriod);
        float[] ts = times.f32(), os = o.f32();
        backend.parallel().forRange(b, grain(dim * 16), (s, e) -> {
            for (int r = (int) s; r < e; r++) {
                double tr = ts[r];
                for (int k = 0; k < half; k++) {
                    // f_k = exp(−ln(maxPeriod)·k/half) (§3.2 step 3); cos first, then sin.
                    double arg = tr * Math.exp(-logPeriod * k / half);
                    os[r * dim + k] = (float) Math.cos(arg);
                    os[r * dim + half + k] = (float) Math.sin(arg);
                }
            }
        });
    }

    @Override
    public void embedding(Tensor table, Tensor ids, Tensor out) {
        String op = "embedding";
        CpuTensor tab = f32(op, "table", table);
        CpuTensor idt = backend.require(op, ids);
        Shapes.requireDType(op + ": ids", idt, DType.I32);
        CpuTensor o = f32(op, "out", out);
        requireRank(op, "table [V, D]", tab, 2);
        requireRank(op, "ids [B]", idt, 1);
        int rows = tab.dim(0), d = tab.dim(1), b = idt.dim(0);
        Shapes.requireShape(op + ": out [B, D] for table " + tab.describe() + ", ids " + idt.describe(), o, b, d);
        requireNoSharing(op, o, tab);
        int[] is = idt.i32();
        // Check every id before writing, so a bad id leaves out untouched.
        for (int i = 0; i < b; i++) {
            if (is[i] < 0 || is[i] >= rows) {
                throw new IndexOutOfBoundsException(op + ": ids " + idt.describe() + " element " + i + " is " + is[i]
                        + ", outside the rows [0, " + rows + ") of table " + tab.describe());
            }
        }
        float[] ts = tab.f32(), os = o.f32();
        backend.parallel().forRange(b, grain(d), (s, e) -> {
            for (int i = (int) s; i < e; i++) {
                System.arraycopy(ts, is[i] * d, os, i * d, d);
            }
        });
    }

    // ---------------------------------------------------------------- norms and modulation

    @Override
    public void rmsNormModulate(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk, int scaleChunk,
                                Tensor out, Tensor rstd) {
        String op = "rmsNormModulate";
        CpuTensor in = f32(op, "x", x);
        CpuTensor w = f32(op, "weight", weight);
        CpuTensor o = f32(op, "out", out);
        if (in.rank() < 1 || in.dim(-1) == 0) {
            throw new ShapeException(op + ": x " + in.describe() + " needs a non-empty last dimension to normalize");
        }
        int d = in.dim(-1);
        int rows = (int) (in.numel() / d);
        Shapes.requireShape(op + ": weight [D] for x " + in.describe(), w, d);
        Shapes.requireSame(op + " (out vs x)", o, in);
        if (!(eps >= 0) || Float.isInfinite(eps)) {
            throw new IllegalArgumentException(op + ": eps must be finite and >= 0, got " + eps);
        }
        CpuTensor m = null;
        int tokens = rows;
        if (mod != null) {
            m = f32(op, "mod", mod);
            requireRank(op, "x [B,T,D] (with mod)", in, 3);
            tokens = in.dim(1);
            requireChunks(op, m, in.dim(0), d, new String[] {"shiftChunk", "scaleChunk"}, shiftChunk, scaleChunk);
        }
        CpuTensor r = null;
        if (rstd != null) {
            r = f32(op, "rstd", rstd);
            if (r.numel() != rows) {
                throw new ShapeException(op + ": rstd " + r.describe() + " should hold one value per row of x "
                        + in.describe() + " (" + rows + ")");
            }
            requireNoSharing(op, r, in, w, m, o);
        }
        requireNoSharing(op, o, w, m);
        CpuNorms.rmsNormModulate(backend.parallel(), in.f32(), w.f32(), eps, m == null ? null : m.f32(),
                m == null ? 0 : m.dim(1), shiftChunk, scaleChunk, rows, tokens, d, o.f32(),
                r == null ? null : r.f32());
    }

    @Override
    public void gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk) {
        String op = "gatedResidual";
        CpuTensor hs = f32(op, "h", h);
        CpuTensor as = f32(op, "a", a);
        CpuTensor m = f32(op, "mod", mod);
        requireRank(op, "h [B,T,D]", hs, 3);
        Shapes.requireSame(op + " (a vs h)", as, hs);
        int d = hs.dim(2);
        requireChunks(op, m, hs.dim(0), d, new String[] {"gateChunk"}, gateChunk);
        requireNoSharing(op, hs, m);
        CpuNorms.gatedResidual(backend.parallel(), hs.f32(), as.f32(), m.f32(), m.dim(1), gateChunk,
                hs.dim(1), d);
    }

    // ---------------------------------------------------------------- attention

    @Override
    public void qkNormRope(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                           Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor rstd) {
        String op = "qkNormRope";
        CpuTensor in = f32(op, "qkv", qkv);
        requireRank(op, "qkv [B, T, 3·H·dh]", in, 3);
        int b = in.dim(0), t = in.dim(1);
        if (heads < 1 || in.dim(2) == 0 || in.dim(2) % (3 * heads) != 0) {
            throw new ShapeException(op + ": qkv " + in.describe() + " last dimension should be 3·heads·dh with heads = "
                    + heads + " and dh >= 1");
        }
        int dh = in.dim(2) / (3 * heads);
        String headShape = "[B,H,T,dh] = " + Shapes.str(new int[] {b, heads, t, dh}) + " for qkv " + in.describe();
        CpuTensor qo = f32(op, "q", q), ko = f32(op, "k", k), vo = f32(op, "v", v);
        Shapes.requireShape(op + ": q " + headShape, qo, b, heads, t, dh);
        Shapes.requireShape(op + ": k " + headShape, ko, b, heads, t, dh);
        Shapes.requireShape(op + ": v " + headShape, vo, b, heads, t, dh);
        requireNoSharing(op, qo, in, ko, vo);
        requireNoSharing(op, ko, in, vo);
        requireNoSharing(op, vo, in);

        if ((qWeight == null) != (kWeight == null)) {
            throw new IllegalArgumentException(op + ": qWeight and kWeight must both be given (qk-norm on) or both "
                    + "be null (qk-norm off); got qWeight " + describeOrNull(qWeight) + ", kWeight "
                    + describeOrNull(kWeight));
        }
        CpuTensor qw = null, kw = null;
        if (qWeight != null) {
            qw = f32(op, "qWeight", qWeight);
            kw = f32(op, "kWeight", kWeight);
            Shapes.requireShape(op + ": qWeight [dh]", qw, dh);
            Shapes.requireShape(op + ": kWeight [dh]", kw, dh);
            if (!(eps >= 0) || Float.isInfinite(eps)) {
                throw new IllegalArgumentException(op + ": eps must be finite and >= 0, got " + eps);
            }
        }
        if ((ropeCos == null) != (ropeSin == null)) {
            throw new IllegalArgumentException(op + ": ropeCos and ropeSin must both be given (RoPE on) or both be "
                    + "null (RoPE off); got ropeCos " + describeOrNull(ropeCos) + ", ropeSin "
                    + describeOrNull(ropeSin));
        }
        CpuTensor cos = null, sin = null;
        if (ropeCos != null) {
            cos = f32(op, "ropeCos", ropeCos);
            sin = f32(op, "ropeSin", ropeSin);
            if (dh % 2 != 0) {
                throw new ShapeException(op + ": RoPE rotates channel pairs, so dh must be even; qkv " + in.describe()
                        + " with " + heads + " heads has dh = " + dh);
            }
            Shapes.requireShape(op + ": ropeCos [T, dh]", cos, t, dh);
            Shapes.requireShape(op + ": ropeSin [T, dh]", sin, t, dh);
        }
        CpuTensor r = null;
        if (rstd != null) {
            if (qw == null) {
                throw new IllegalArgumentException(op + ": rstd " + rstd.describe() + " was given but qk-norm is off "
                        + "(qWeight and kWeight are null), so there is no ρ to save");
            }
            r = f32(op, "rstd", rstd);
            Shapes.requireShape(op + ": rstd [B,T,2,H]", r, b, t, 2, heads);
            requireNoSharing(op, r, in, qo, ko, vo);
        }
        CpuAttention.Layout layout = new CpuAttention.Layout(b, heads, t, dh);
        CpuAttention.qkNormRope(backend.parallel(), layout, in.f32(), qw == null ? null : qw.f32(),
                kw == null ? null : kw.f32(), eps, cos == null ? null : cos.f32(), sin == null ? null : sin.f32(),
                qo.f32(), ko.f32(), vo.f32(), r == null ? null : r.f32());
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse) {
        String op = "attention";
        CpuTensor qs = f32(op, "q", q), ks = f32(op, "k", k), vs = f32(op, "v", v), o = f32(op, "out", out);
        requireRank(op, "q [B,H,T,dh]", qs, 4);
        Shapes.requireSame(op + " (k vs q)", ks, qs);
        Shapes.requireSame(op + " (v vs q)", vs, qs);
        int b = qs.dim(0), heads = qs.dim(1), t = qs.dim(2), dh = qs.dim(3);
        Shapes.requireShape(op + ": out [B, T, H·dh] for q " + qs.describe(), o, b, t, heads * dh);
        if (Float.isNaN(scale) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException(op + ": scale must be finite, got " + scale);
        }
        requireNoSharing(op, o, qs, ks, vs);
        CpuTensor l = null;
        if (lse != null) {
            l = f32(op, "lse", lse);
            Shapes.requireShape(op + ": lse [B,H,T] for q " + qs.describe(), l, b, heads, t);
            requireNoSharing(op, l, qs, ks, vs, o);
        }
        if (dh == 0) {
            throw new ShapeException(op + ": q " + qs.describe() + " has head dimension 0");
        }
        CpuAttention.attention(backend.parallel(), new CpuAttention.Layout(b, heads, t, dh), qs.f32(), ks.f32(),
                vs.f32(), scale, o.f32(), l == null ? null : l.f32());
    }

    // ---------------------------------------------------------------- MLP

    @Override
    public void swiglu(Tensor gu, Tensor out) {
        String op = "swiglu";
        CpuTensor in = f32(op, "gu", gu);
        CpuTensor o = f32(op, "out", out);
        if (in.rank() < 1 || in.dim(-1) == 0 || in.dim(-1) % 2 != 0) {
            throw new ShapeException(op + ": gu " + in.describe() + " needs an even, non-zero last dimension 2F");
        }
        int f = in.dim(-1) / 2;
        int[] expected = in.shape();
        expected[expected.length - 1] = f;
        Shapes.requireShape(op + ": out [rows, F] for gu " + in.describe(), o, expected);
        requireNoSharing(op, o, in);
        float[] gs = in.f32(), os = o.f32();
        backend.parallel().forRange(o.numel(), ELEMENTS_PER_TASK, (s, e) -> {
            for (int i = (int) s; i < e; i++) {
                int row = i / f, j = i % f;
                double g = gs[row * 2 * f + j];
                double u = gs[row * 2 * f + f + j];
                // SiLU(g)·u = g/(1+e^−g)·u (§3.2 SwiGLU).
                os[i] = (float) (g / (1.0 + Math.exp(-g)) * u);
            }
        });
    }

    // ---------------------------------------------------------------- checks shared by the ops

    /** t as an open F32 tensor of this backend; {@code role} names the argument in errors. */
    private CpuTensor f32(String op, String role, Tensor t) {
        Objects.requireNonNull(t, () -> op + ": " + role + " is null");
        CpuTensor c = backend.require(op + " " + role, t);
        Shapes.requireDType(op + ": " + role, c, DType.F32);
        return c;
    }

    private static String describeOrNull(Tensor t) {
        return t == null ? "null" : t.describe();
    }

    static void requireRank(String op, String role, Tensor t, int rank) {
        if (t.rank() != rank) {
            throw new ShapeException(op + ": " + role + " should have rank " + rank + ", got " + t.describe());
        }
    }

    /** Fails if {@code written} shares storage with any of the (possibly null) {@code others}. */
    static void requireNoSharing(String op, CpuTensor written, CpuTensor... others) {
        for (CpuTensor other : others) {
            if (other != null && written.sharesStorageWith(other)) {
                throw new ShapeException(op + ": " + written.describe() + " must not share storage with "
                        + other.describe());
            }
        }
    }

    private static void requirePatch(String op, Tensor image, int patch, int h, int w) {
        if (patch < 1 || h % patch != 0 || w % patch != 0) {
            throw new ShapeException(op + ": patch " + patch + " must be >= 1 and divide the height and width of "
                    + image.describe());
        }
    }

    /** mod must be [B, K·D] and every chunk index in [0, K). */
    private static void requireChunks(String op, Tensor mod, int batch, int d, String[] names, int... chunks) {
        if (d == 0 || mod.rank() != 2 || mod.dim(0) != batch || mod.dim(1) == 0 || mod.dim(1) % d != 0) {
            throw new ShapeException(op + ": mod " + mod.describe() + " should be [B, K·D] with B = " + batch
                    + ", D = " + d);
        }
        int count = mod.dim(1) / d;
        for (int i = 0; i < chunks.length; i++) {
            if (chunks[i] < 0 || chunks[i] >= count) {
                throw new ShapeException(op + ": " + names[i] + " " + chunks[i] + " is outside the " + count
                        + " chunks of mod " + mod.describe());
            }
        }
    }

    /** Rows per task for loops that do about {@code workPerRow} cheap operations per row. */
    static long grain(long workPerRow) {
        return Math.max(1, ELEMENTS_PER_TASK / Math.max(1, workPerRow));
    }
}
