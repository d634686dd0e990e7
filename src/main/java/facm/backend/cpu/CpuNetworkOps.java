package facm.backend.cpu;

import static facm.backend.cpu.CpuNetworkArgs.array;
import static facm.tensor.Shapes.requireNoSharing;

import facm.backend.cpu.CpuNetworkArgs.AttentionInputs;
import facm.backend.cpu.CpuNetworkArgs.NormInputs;
import facm.backend.cpu.CpuNetworkArgs.QkvInputs;
import facm.tensor.DType;
import facm.tensor.NetworkChecks;
import facm.tensor.NetworkOps;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.util.Objects;

/**
 * The LightningDiT layers (facm-spec.md §3) on the CPU: the reference the CUDA kernels are checked against. This class
 * checks every shape, dtype and aliasing rule (through {@link CpuNetworkArgs}) and runs the simple layers; the
 * patch permutations run in {@link CpuPatches}, the attention pair (qk-norm/RoPE and softmax attention) in
 * {@link CpuAttention}, the RMSNorm/adaLN pair in {@link CpuNorms}. The backward ops are handed to
 * {@link CpuNetworkBackward}, whose loops sit next to their forwards in those classes; the forward-mode (JVP) ops to
 * {@link CpuNetworkJvp}.
 *
 * <p>Numerics, the same rule for every op: each output element is the fp32 rounding of its value computed in float64
 * from the fp32 inputs (RMS statistics, softmax sums, attention accumulation, transcendental functions). The results
 * are therefore within about one ulp of the exact function of the stored inputs, independent of thread count.
 *
 * <p>bf16 activations (inference): rmsNormModulate's out, gatedResidual's a, swiglu's gu and out, qkNormRope's qkv
 * and q, k, v may be BF16 ({@link NetworkChecks#rmsNormDTypes} and its neighbours state the combinations). The
 * reference for those forms: widen the bf16 inputs exactly, compute as for f32, round each output to bf16 once more.
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
    private final CpuNetworkArgs args;
    private final CpuNetworkBackward backward;
    private final CpuNetworkJvp jvp;

    public CpuNetworkOps(CpuBackend backend) {
        this.backend = Objects.requireNonNull(backend, "CpuNetworkOps: backend is null");
        this.args = new CpuNetworkArgs(backend);
        this.backward = new CpuNetworkBackward(args);
        this.jvp = new CpuNetworkJvp(this, args);
    }

    // ---------------------------------------------------------------- layout: patches, time features, embedding

    @Override
    public void patchify(Tensor x, int patch, Tensor out) {
        String op = "patchify";
        CpuTensor image = args.f32(op, "x", x);
        CpuTensor tokens = args.f32(op, "out", out);
        CpuPatches.Grid grid = args.patchGrid(op, "x", image, "out", tokens, patch, "C·p·p");
        CpuPatches.convWeightOrder(backend.parallel(), grid, image.f32(), tokens.f32(), true);
    }

    @Override
    public void unpatchify(Tensor tokens, int patch, Tensor out) {
        String op = "unpatchify";
        CpuTensor tokenTensor = args.f32(op, "tokens", tokens);
        CpuTensor image = args.f32(op, "out", out);
        CpuPatches.Grid grid = args.patchGrid(op, "out", image, "tokens", tokenTensor, patch, "p·p·C");
        CpuPatches.channelLastOrder(backend.parallel(), grid, image.f32(), tokenTensor.f32(), false);
    }

    @Override
    public void timestepEmbedding(Tensor t, float maxPeriod, Tensor out) {
        String op = "timestepEmbedding";
        CpuTensor times = args.f32(op, "t", t);
        CpuTensor o = args.f32(op, "out", out);
        NetworkChecks.timestepEmbedding(op, times, maxPeriod, o);
        int b = times.dim(0), dim = o.dim(1);
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
        CpuTensor tab = args.f32(op, "table", table);
        CpuTensor idt = backend.require(op, ids);
        Shapes.requireDType(op + ": ids", idt, DType.I32);
        CpuTensor o = args.f32(op, "out", out);
        NetworkChecks.embedding(op, tab, idt, o);
        int rows = tab.dim(0), d = tab.dim(1), b = idt.dim(0);
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

    /** out F32, or BF16: the f32 result rounded to bf16 (the reference of the CUDA bf16-output kernel). */
    @Override
    public void rmsNormModulate(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk, int scaleChunk,
                                Tensor out, Tensor rstd) {
        String op = "rmsNormModulate";
        NetworkChecks.rmsNormDTypes(op, args.require(op, "x", x), args.require(op, "out", out));
        if (out.dtype() == DType.BF16) {
            try (Tensor wide = f32Like(out)) {
                rmsNormModulate(x, weight, eps, mod, shiftChunk, scaleChunk, wide, rstd);
                backend.convert(wide, out);
            }
            return;
        }
        NormInputs in = args.normInputs(op, x, weight, mod, shiftChunk, scaleChunk);
        CpuTensor o = args.f32(op, "out", out);
        CpuTensor r = rstd == null ? null : args.f32(op, "rstd", rstd);
        NetworkChecks.rmsNormModulate(op, in.x(), in.weight(), eps, in.mod(), shiftChunk, scaleChunk, o, r);
        CpuNorms.rmsNormModulate(backend.parallel(), in.x().f32(), in.weight().f32(), eps, array(in.mod()),
                in.modWidth(), shiftChunk, scaleChunk, in.rows(), in.tokens(), in.d(), o.f32(), array(r));
    }

    /** a F32, or BF16 (widened exactly, then the f32 update). */
    @Override
    public void gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk) {
        String op = "gatedResidual";
        NetworkChecks.gatedResidualDTypes(op, args.require(op, "h", h), args.require(op, "a", a));
        if (a.dtype() == DType.BF16) {
            try (Tensor wide = widened(a)) {
                gatedResidual(h, wide, mod, gateChunk);
            }
            return;
        }
        CpuTensor hs = args.f32(op, "h", h);
        CpuTensor as = args.f32(op, "a", a);
        CpuTensor m = args.f32(op, "mod", mod);
        NetworkChecks.gatedResidual(op, hs, as, m, gateChunk);
        int d = hs.dim(2);
        CpuNorms.gatedResidual(backend.parallel(), hs.f32(), as.f32(), m.f32(), m.dim(1), gateChunk,
                hs.dim(1), d);
    }

    /** A new F32 tensor shaped like {@code t} (the f32 result of a bf16-output form before its rounding). */
    private Tensor f32Like(Tensor t) {
        return backend.empty(t.name() + " f32", DType.F32, t.shape());
    }

    /** A new F32 copy of a BF16 tensor (exact). */
    private Tensor widened(Tensor t) {
        Tensor wide = f32Like(t);
        backend.convert(t, wide);
        return wide;
    }

    // ---------------------------------------------------------------- attention

    /** qkv F32 → F32 q, k, v; qkv BF16 (widened exactly) → q, k, v all BF16 (the f32 results rounded) or all F32. */
    @Override
    public void qkNormRope(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                           Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor rstd) {
        String op = "qkNormRope";
        NetworkChecks.qkvDTypes(op, args.require(op, "qkv", qkv), args.require(op, "q", q), args.require(op, "k", k),
                args.require(op, "v", v));
        if (qkv.dtype() == DType.F32 && q.dtype() == DType.BF16) {
            try (Tensor q32 = f32Like(q); Tensor k32 = f32Like(k); Tensor v32 = f32Like(v)) {
                qkNormRope(qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q32, k32, v32, rstd);
                backend.convert(q32, q);
                backend.convert(k32, k);
                backend.convert(v32, v);
            }
            return;
        }
        if (qkv.dtype() == DType.BF16) {
            try (Tensor wide = widened(qkv)) {
                if (q.dtype() == DType.F32) {
                    qkNormRope(wide, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, rstd);
                    return;
                }
                try (Tensor q32 = f32Like(q); Tensor k32 = f32Like(k); Tensor v32 = f32Like(v)) {
                    qkNormRope(wide, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q32, k32, v32, rstd);
                    backend.convert(q32, q);
                    backend.convert(k32, k);
                    backend.convert(v32, v);
                }
            }
            return;
        }
        QkvInputs in = args.qkvInputs(op, qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin);
        CpuTensor qo = args.f32(op, "q", q), ko = args.f32(op, "k", k), vo = args.f32(op, "v", v);
        CpuTensor r = args.optionalF32(op, "rstd", rstd);
        NetworkChecks.qkNormRope(op, in.qkv(), heads, in.qWeight(), in.kWeight(), eps, in.cos(), in.sin(), qo, ko, vo,
                r);
        CpuAttention.qkNormRope(backend.parallel(), in.layout(), in.qkv().f32(), array(in.qWeight()),
                array(in.kWeight()), eps, array(in.cos()), array(in.sin()), qo.f32(), ko.f32(), vo.f32(), array(r));
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse) {
        String op = "attention";
        AttentionInputs in = args.attentionInputs(op, q, k, v, scale, out);
        CpuTensor l = lse == null ? null : args.f32(op, "lse", lse);
        NetworkChecks.attention(op, in.q(), in.k(), in.v(), scale, in.out(), l);
        float[] o = CpuAttention.outputFloats(in.out());
        CpuAttention.attention(backend.parallel(), in.layout(), CpuAttention.inputFloats(in.q()),
                CpuAttention.inputFloats(in.k()), CpuAttention.inputFloats(in.v()), scale, o, array(l));
        CpuAttention.storeOutput(in.out(), o);
    }

    /**
     * F32 always; BF16 once this reference's attention takes bf16 heads (widen, compute, round), found out once by
     * running it on a one-token bf16 head: the answer follows the attention code, not a flag kept beside it.
     */
    @Override
    public boolean attentionTakes(DType dtype) {
        if (dtype != DType.BF16) {
            return dtype == DType.F32;
        }
        Boolean takes = bf16Attention;
        if (takes == null) {
            takes = probeBf16Attention();
            bf16Attention = takes;
        }
        return takes;
    }

    private Boolean bf16Attention;

    private boolean probeBf16Attention() {
        try (Tensor q = backend.zeros(DType.BF16, 1, 1, 1, 2); Tensor k = backend.zeros(DType.BF16, 1, 1, 1, 2);
             Tensor v = backend.zeros(DType.BF16, 1, 1, 1, 2); Tensor out = backend.zeros(DType.BF16, 1, 1, 2);
             Tensor lse = backend.zeros(DType.F32, 1, 1, 1)) {
            attention(q, k, v, 1f, out, lse);
            return true;
        } catch (RuntimeException notTaken) {
            return false;
        }
    }

    // ---------------------------------------------------------------- MLP

    /** gu F32 or BF16 (widened exactly) → out F32, or BF16 (the f32 result rounded once). */
    @Override
    public void swiglu(Tensor gu, Tensor out) {
        String op = "swiglu";
        NetworkChecks.swigluDTypes(op, args.require(op, "gu", gu), args.require(op, "out", out));
        if (gu.dtype() == DType.F32 && out.dtype() == DType.BF16) {
            NetworkChecks.swigluWidth(op, gu, "out", out);
            try (Tensor o32 = f32Like(out)) {
                swiglu(gu, o32);
                backend.convert(o32, out);
            }
            return;
        }
        if (gu.dtype() == DType.BF16) {
            NetworkChecks.swigluWidth(op, gu, "out", out);
            try (Tensor wide = widened(gu)) {
                if (out.dtype() == DType.F32) {
                    swiglu(wide, out);
                    return;
                }
                try (Tensor o32 = f32Like(out)) {
                    swiglu(wide, o32);
                    backend.convert(o32, out);
                }
            }
            return;
        }
        CpuTensor in = args.f32(op, "gu", gu);
        CpuTensor o = args.f32(op, "out", out);
        int f = args.swigluWidth(op, in, "out", o);
        requireNoSharing(op, o, in);
        // SiLU(g)·u = g/(1+e^−g)·u (§3.2 SwiGLU).
        CpuSwiglu.forward(backend.parallel(), in.f32(), o.f32(), (int) (o.numel() / Math.max(1, f)), f);
    }

    // ---------------------------------------------------------------- backward: checks and loops in CpuNetworkBackward

    @Override
    public void patchifyBackward(Tensor gradTokens, int patch, Tensor gradX) {
        backward.patchifyBackward(gradTokens, patch, gradX);
    }

    @Override
    public void unpatchifyBackward(Tensor gradOut, int patch, Tensor gradTokens) {
        backward.unpatchifyBackward(gradOut, patch, gradTokens);
    }

    @Override
    public void embeddingBackward(Tensor gradOut, Tensor ids, Tensor gradTable) {
        backward.embeddingBackward(gradOut, ids, gradTable);
    }

    @Override
    public void rmsNormModulateBackward(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk, int scaleChunk,
                                        Tensor rstd, Tensor gradOut, Tensor gradX, Tensor gradWeight, Tensor gradMod) {
        backward.rmsNormModulateBackward(x, weight, mod, shiftChunk, scaleChunk, rstd, gradOut, gradX, gradWeight,
                gradMod);
    }

    @Override
    public void gatedResidualBackward(Tensor a, Tensor mod, int gateChunk, Tensor gradH, Tensor gradA, Tensor gradMod) {
        backward.gatedResidualBackward(a, mod, gateChunk, gradH, gradA, gradMod);
    }

    @Override
    public void qkNormRopeBackward(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                                   Tensor ropeSin, Tensor rstd, Tensor gradQ, Tensor gradK, Tensor gradV,
                                   Tensor gradQkv, Tensor gradQWeight, Tensor gradKWeight) {
        backward.qkNormRopeBackward(qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, rstd, gradQ, gradK, gradV,
                gradQkv, gradQWeight, gradKWeight);
    }

    @Override
    public void attentionBackward(Tensor q, Tensor k, Tensor v, float scale, Tensor out, Tensor lse, Tensor gradOut,
                                  Tensor gradQ, Tensor gradK, Tensor gradV) {
        backward.attentionBackward(q, k, v, scale, out, lse, gradOut, gradQ, gradK, gradV);
    }

    @Override
    public void swigluBackward(Tensor gu, Tensor gradOut, Tensor gradGu) {
        backward.swigluBackward(gu, gradOut, gradGu);
    }

    @Override
    public void siluBackward(Tensor x, Tensor gradOut, Tensor gradIn) {
        backward.siluBackward(x, gradOut, gradIn);
    }

    // ---------------------------------------------------------------- forward mode (JVP): in CpuNetworkJvp

    @Override
    public void timestepEmbeddingJvp(Tensor t, Tensor tDot, float maxPeriod, Tensor out, Tensor outDot) {
        jvp.timestepEmbeddingJvp(t, tDot, maxPeriod, out, outDot);
    }

    @Override
    public void siluJvp(Tensor x, Tensor xDot, Tensor out, Tensor outDot) {
        jvp.siluJvp(x, xDot, out, outDot);
    }

    @Override
    public void rmsNormModulateJvp(Tensor x, Tensor xDot, Tensor weight, float eps, Tensor mod, Tensor modDot,
                                   int shiftChunk, int scaleChunk, Tensor out, Tensor outDot, Tensor rstd) {
        NetworkChecks.jvpOutDTypes("rmsNormModulateJvp", args.require("rmsNormModulateJvp", "out", out),
                args.require("rmsNormModulateJvp", "outDot", outDot));
        if (out.dtype() == DType.BF16) {
            try (Tensor o32 = f32Like(out); Tensor od32 = f32Like(outDot)) {
                jvp.rmsNormModulateJvp(x, xDot, weight, eps, mod, modDot, shiftChunk, scaleChunk, o32, od32, rstd);
                backend.convert(o32, out);
                backend.convert(od32, outDot);
            }
            return;
        }
        jvp.rmsNormModulateJvp(x, xDot, weight, eps, mod, modDot, shiftChunk, scaleChunk, out, outDot, rstd);
    }

    @Override
    public void gatedResidualJvp(Tensor h, Tensor hDot, Tensor a, Tensor aDot, Tensor mod, Tensor modDot,
                                 int gateChunk) {
        jvp.gatedResidualJvp(h, hDot, a, aDot, mod, modDot, gateChunk);
    }

    @Override
    public void qkNormRopeJvp(Tensor qkv, Tensor qkvDot, int heads, Tensor qWeight, Tensor kWeight, float eps,
                              Tensor ropeCos, Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot,
                              Tensor vDot, Tensor rstd) {
        if (args.require("qkNormRopeJvp", "q", q).dtype() == DType.BF16) {
            // bf16 heads and tangents (the bf16 attention JVP's operands): the f32 results, each rounded once.
            Tensor[] bf16 = {q, k, v, qDot, kDot, vDot};
            Tensor[] f32 = new Tensor[bf16.length];
            try {
                for (int i = 0; i < bf16.length; i++) {
                    Shapes.requireDType("qkNormRopeJvp: " + args.require("qkNormRopeJvp", "head", bf16[i]).name()
                            + " (like q " + q.describe() + ")", bf16[i], DType.BF16);
                    f32[i] = f32Like(bf16[i]);
                }
                jvp.qkNormRopeJvp(qkv, qkvDot, heads, qWeight, kWeight, eps, ropeCos, ropeSin, f32[0], f32[1], f32[2],
                        f32[3], f32[4], f32[5], rstd);
                for (int i = 0; i < bf16.length; i++) {
                    backend.convert(f32[i], bf16[i]);
                }
            } finally {
                for (Tensor t : f32) {
                    if (t != null) {
                        t.close();
                    }
                }
            }
            return;
        }
        jvp.qkNormRopeJvp(qkv, qkvDot, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, qDot, kDot, vDot,
                rstd);
    }

    @Override
    public void attentionJvp(Tensor q, Tensor k, Tensor v, Tensor qDot, Tensor kDot, Tensor vDot, float scale,
                             Tensor out, Tensor outDot, Tensor lse) {
        jvp.attentionJvp(q, k, v, qDot, kDot, vDot, scale, out, outDot, lse);
    }

    @Override
    public void swigluJvp(Tensor gu, Tensor guDot, Tensor out, Tensor outDot) {
        NetworkChecks.jvpOutDTypes("swigluJvp", args.require("swigluJvp", "out", out),
                args.require("swigluJvp", "outDot", outDot));
        if (out.dtype() == DType.BF16) {
            try (Tensor o32 = f32Like(out); Tensor od32 = f32Like(outDot)) {
                jvp.swigluJvp(gu, guDot, o32, od32);
                backend.convert(o32, out);
                backend.convert(od32, outDot);
            }
            return;
        }
        jvp.swigluJvp(gu, guDot, out, outDot);
    }

    /** Rows per task for loops that do about {@code workPerRow} cheap operations per row. */
    static long grain(long workPerRow) {
        return Math.max(1, ELEMENTS_PER_TASK / Math.max(1, workPerRow));
    }
}
