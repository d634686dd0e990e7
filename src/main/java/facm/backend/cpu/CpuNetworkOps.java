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
 * reference for those forms ({@link CpuBf16Forms}): widen the bf16 inputs exactly, compute as for f32, round each
 * output to bf16 once more.
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
    private final CpuBf16Forms bf16;

    public CpuNetworkOps(CpuBackend backend) {
        this.backend = Objects.requireNonNull(backend, "CpuNetworkOps: backend is null");
        this.args = new CpuNetworkArgs(backend);
        this.backward = new CpuNetworkBackward(args);
        this.jvp = new CpuNetworkJvp(this, args);
        this.bf16 = new CpuBf16Forms(this, backend, jvp);
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
            bf16.rmsNormModulate(x, weight, eps, mod, shiftChunk, scaleChunk, out, rstd);
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
            bf16.gatedResidual(h, a, mod, gateChunk);
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

    // ---------------------------------------------------------------- attention

    /** qkv F32 → F32 q, k, v; qkv BF16 (widened exactly) → q, k, v all BF16 (the f32 results rounded) or all F32. */
    @Override
    public void qkNormRope(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                           Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor rstd) {
        String op = "qkNormRope";
        NetworkChecks.qkvDTypes(op, args.require(op, "qkv", qkv), args.require(op, "q", q), args.require(op, "k", k),
                args.require(op, "v", v));
        if ((qkv.dtype() == DType.F32 && q.dtype() == DType.BF16) || qkv.dtype() == DType.BF16) {
            bf16.qkNormRope(qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, rstd);
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

    /** F32 and BF16 heads: the reference attention widens bf16 operands exactly and rounds bf16 outputs once. */
    @Override
    public boolean attentionTakes(DType dtype) {
        return dtype == DType.F32 || dtype == DType.BF16;
    }

    // ---------------------------------------------------------------- MLP

    /** gu F32 or BF16 (widened exactly) → out F32, or BF16 (the f32 result rounded once). */
    @Override
    public void swiglu(Tensor gu, Tensor out) {
        String op = "swiglu";
        NetworkChecks.swigluDTypes(op, args.require(op, "gu", gu), args.require(op, "out", out));
        if ((gu.dtype() == DType.F32 && out.dtype() == DType.BF16) || gu.dtype() == DType.BF16) {
            bf16.swiglu(op, gu, out);
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
            bf16.rmsNormModulateJvp(x, xDot, weight, eps, mod, modDot, shiftChunk, scaleChunk, out, outDot, rstd);
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
            bf16.qkNormRopeJvp(args, qkv, qkvDot, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, qDot,
                    kDot, vDot, rstd);
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
            bf16.swigluJvp(gu, guDot, out, outDot);
            return;
        }
        jvp.swigluJvp(gu, guDot, out, outDot);
    }

    /** Rows per task for loops that do about {@code workPerRow} cheap operations per row. */
    static long grain(long workPerRow) {
        return Math.max(1, ELEMENTS_PER_TASK / Math.max(1, workPerRow));
    }
}
