package facm.backend.cpu;

import facm.tensor.DType;
import facm.tensor.NetworkChecks;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

/**
 * The bf16 forms of {@link CpuNetworkOps}' layers and JVPs, the reference for the CUDA bf16 kernels: widen the bf16
 * inputs exactly, run the f32 op, round each output to bf16 once. The callers have checked the dtype combination.
 */
final class CpuBf16Forms {
    private final CpuNetworkOps network;
    private final CpuBackend backend;
    private final CpuNetworkJvp jvp;

    CpuBf16Forms(CpuNetworkOps network, CpuBackend backend, CpuNetworkJvp jvp) {
        this.network = network;
        this.backend = backend;
        this.jvp = jvp;
    }

    /** rmsNormModulate with a BF16 out. */
    void rmsNormModulate(Tensor x, Tensor weight, float eps, Tensor mod, int shiftChunk, int scaleChunk, Tensor out,
                         Tensor rstd) {
        try (Tensor wide = f32Like(out)) {
            network.rmsNormModulate(x, weight, eps, mod, shiftChunk, scaleChunk, wide, rstd);
            backend.convert(wide, out);
        }
    }

    /** gatedResidual with a BF16 a. */
    void gatedResidual(Tensor h, Tensor a, Tensor mod, int gateChunk) {
        try (Tensor wide = widened(a)) {
            network.gatedResidual(h, wide, mod, gateChunk);
        }
    }

    /** qkNormRope with F32 qkv and BF16 heads, or with BF16 qkv. */
    void qkNormRope(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos, Tensor ropeSin,
                    Tensor q, Tensor k, Tensor v, Tensor rstd) {
        if (qkv.dtype() == DType.F32) {
            qkNormRopeRounded(qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, rstd);
            return;
        }
        try (Tensor wide = widened(qkv)) {
            if (q.dtype() == DType.F32) {
                network.qkNormRope(wide, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, rstd);
                return;
            }
            qkNormRopeRounded(wide, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q, k, v, rstd);
        }
    }

    /** The f32 qkNormRope of an F32 qkv into f32 heads, each rounded once into the BF16 q, k, v. */
    private void qkNormRopeRounded(Tensor qkv, int heads, Tensor qWeight, Tensor kWeight, float eps, Tensor ropeCos,
                                   Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor rstd) {
        try (Tensor q32 = f32Like(q); Tensor k32 = f32Like(k); Tensor v32 = f32Like(v)) {
            network.qkNormRope(qkv, heads, qWeight, kWeight, eps, ropeCos, ropeSin, q32, k32, v32, rstd);
            backend.convert(q32, q);
            backend.convert(k32, k);
            backend.convert(v32, v);
        }
    }


    /** swiglu with F32 gu and a BF16 out, or with BF16 gu. */
    void swiglu(String op, Tensor gu, Tensor out) {
        NetworkChecks.swigluWidth(op, gu, "out", out);
        if (gu.dtype() == DType.F32) {
            swigluRounded(gu, out);
            return;
        }
        try (Tensor wide = widened(gu)) {
            if (out.dtype() == DType.F32) {
                network.swiglu(wide, out);
                return;
            }
            swigluRounded(wide, out);
        }
    }

    /** The f32 swiglu of an F32 gu, rounded once into the BF16 out. */
    private void swigluRounded(Tensor gu, Tensor out) {
        try (Tensor o32 = f32Like(out)) {
            network.swiglu(gu, o32);
            backend.convert(o32, out);
        }
    }

    /** rmsNormModulateJvp with BF16 out and outDot. */
    void rmsNormModulateJvp(Tensor x, Tensor xDot, Tensor weight, float eps, Tensor mod, Tensor modDot,
                            int shiftChunk, int scaleChunk, Tensor out, Tensor outDot, Tensor rstd) {
        try (Tensor o32 = f32Like(out); Tensor od32 = f32Like(outDot)) {
            jvp.rmsNormModulateJvp(x, xDot, weight, eps, mod, modDot, shiftChunk, scaleChunk, o32, od32, rstd);
            backend.convert(o32, out);
            backend.convert(od32, outDot);
        }
    }

    /** qkNormRopeJvp with BF16 heads and tangents (the bf16 attention JVP's operands). */
    void qkNormRopeJvp(CpuNetworkArgs args, Tensor qkv, Tensor qkvDot, int heads, Tensor qWeight, Tensor kWeight,
                       float eps, Tensor ropeCos, Tensor ropeSin, Tensor q, Tensor k, Tensor v, Tensor qDot,
                       Tensor kDot, Tensor vDot, Tensor rstd) {
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
    }

    /** swigluJvp with BF16 out and outDot. */
    void swigluJvp(Tensor gu, Tensor guDot, Tensor out, Tensor outDot) {
        try (Tensor o32 = f32Like(out); Tensor od32 = f32Like(outDot)) {
            jvp.swigluJvp(gu, guDot, o32, od32);
            backend.convert(o32, out);
            backend.convert(od32, outDot);
        }
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
}
