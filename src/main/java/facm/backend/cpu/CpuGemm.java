package facm.backend.cpu;

import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.ShapeException;

/**
 * The CPU matrix product, out = alpha · op(a) · op(b) + beta · out (contract: {@link facm.tensor.Backend#gemm}).
 *
 * <p>Method: the output is cut into tiles of {@link #TILE_M} × {@link #TILE_N}; each task owns whole tiles, so no
 * two threads write the same element. For each tile, the k dimension is walked in panels of {@link #TILE_K}: the
 * panel of op(a) and of op(b) is copied ("packed") into contiguous row-major scratch, which also applies the
 * transposes and the input rounding of the precision mode (tf32 rounding, bf16 widening). The product of the packed
 * panels runs in i-k-j order: for each row of the tile and each k, a scalar of op(a) times a row of packed op(b) is
 * added to the tile's accumulator row with {@link Math#fma}, a contiguous loop the JIT vectorizes (two rows and four
 * k at a time, see {@link #multiplyPanels}).
 *
 * <p>Accuracy: every output element is accumulated in fp32 over k in increasing order, one fused multiply-add (one
 * rounding) per term, so |computed − exact| ≤ k · 2^-24 · Σ_k |a_ik · b_kj| (the standard bound for recursive
 * summation; typical errors are about √k times smaller). The exact value here is the product of the inputs after
 * the mode's rounding (tf32 for TF32, the bf16 values for BF16). The epilogue alpha·acc + beta·out is computed in
 * float64 and rounded once to float (for a BF16 out, that float is then rounded to bf16, as a GPU epilogue does). When beta is 0 the old out is not read, so NaN
 * garbage in it does not leak into the result.
 */
final class CpuGemm {
    static final int TILE_M = 64;
    static final int TILE_N = 256;
    static final int TILE_K = 256;
    /** Multiply-adds worth a task of their own. */
    private static final long FMAS_PER_TASK = 1 << 18;

    /**
     * One input operand as a matrix op(x) inside a flat array: element (r, c) of batch entry b is at
     * b·batchStride + r·rowStride + c·colStride. A 2-D operand broadcast over the batch has batchStride 0.
     */
    private record Operand(Object array, boolean roundToTf32, int rowStride, int colStride, long batchStride) {

        /** Copies rows [r0, r0+nr) × cols [c0, c0+nc) of batch entry b into dst as a row-major nr × nc block. */
        void pack(int b, int r0, int nr, int c0, int nc, float[] dst) {
            long base = b * batchStride + (long) r0 * rowStride + (long) c0 * colStride;
            if (array instanceof short[] bits) {
                for (int r = 0; r < nr; r++) {
                    for (int c = 0; c < nc; c++) {
                        dst[r * nc + c] = Bf16.toFloat(bits[(int) (base + (long) r * rowStride + (long) c * colStride)]);
                    }
                }
                return;
            }
            float[] src = (float[]) array;
            if (colStride == 1) {
                for (int r = 0; r < nr; r++) {
                    System.arraycopy(src, (int) (base + (long) r * rowStride), dst, r * nc, nc);
                }
            } else {
                // Transposed source: walk it along its contiguous rows (our columns).
                for (int c = 0; c < nc; c++) {
                    int from = (int) (base + (long) c * colStride);
                    for (int r = 0; r < nr; r++) {
                        dst[r * nc + c] = src[from + r * rowStride];
                    }
                }
            }
            if (roundToTf32) {
                for (int i = 0; i < nr * nc; i++) {
                    dst[i] = Tf32.round(dst[i]);
                }
            }
        }
    }

    private CpuGemm() {
    }

    static void gemm(ParallelRanges par, CpuTensor a, boolean transA, CpuTensor b, boolean transB, CpuTensor out,
                     float alpha, float beta, GemmPrecision precision) {
        String what = "gemm(" + a.describe() + (transA ? "ᵀ" : "") + " · " + b.describe() + (transB ? "ᵀ" : "")
                + " -> " + out.describe() + ", " + precision + ")";
        checkDTypes(what, a, b, out, precision);
        if (a.rank() < 2 || a.rank() > 3 || b.rank() < 2 || b.rank() > 3) {
            throw new ShapeException(what + ": a and b must have rank 2 or 3 ([batch,] rows, cols)");
        }
        int m = transA ? a.dim(-1) : a.dim(-2);
        int k = transA ? a.dim(-2) : a.dim(-1);
        int kb = transB ? b.dim(-1) : b.dim(-2);
        int n = transB ? b.dim(-2) : b.dim(-1);
        if (k != kb) {
            throw new ShapeException(what + ": inner dimensions differ: op(a) is " + m + "x" + k + ", op(b) is "
                    + kb + "x" + n);
        }
        int batch = 1;
        boolean batched = a.rank() == 3 || b.rank() == 3;
        if (a.rank() == 3 && b.rank() == 3 && a.dim(0) != b.dim(0)) {
            throw new ShapeException(what + ": batch sizes differ: " + a.dim(0) + " vs " + b.dim(0));
        }
        if (batched) {
            batch = a.rank() == 3 ? a.dim(0) : b.dim(0);
        }
        int[] expected = batched ? new int[] {batch, m, n} : new int[] {m, n};
        facm.tensor.Shapes.requireShape(what + ": out", out, expected);
        if (out.sharesStorageWith(a) || out.sharesStorageWith(b)) {
            throw new ShapeException(what + ": out must not share storage with a or b");
        }
        boolean tf32 = precision == GemmPrecision.TF32;
        Operand opA = operand(a, transA, m, k, tf32);
        Operand opB = operand(b, transB, k, n, tf32);
        run(par, opA, opB, batch, m, n, k, out, alpha, beta);
    }

    private static void checkDTypes(String what, CpuTensor a, CpuTensor b, CpuTensor out, GemmPrecision precision) {
        if (precision == null) {
            throw new ShapeException(what + ": precision must not be null");
        }
        DType in = precision == GemmPrecision.BF16 ? DType.BF16 : DType.F32;
        if (a.dtype() != in || b.dtype() != in) {
            throw new ShapeException(what + ": precision " + precision + " needs " + in.lower() + " inputs");
        }
        boolean outOk = out.dtype() == DType.F32 || (precision == GemmPrecision.BF16 && out.dtype() == DType.BF16);
        if (!outOk) {
            throw new ShapeException(what + ": out must be f32" + (in == DType.BF16 ? " or bf16" : ""));
        }
    }

    /** op(x) as rows × cols: x is [rows, cols] or, when transposed, [cols, rows] (plus an optional batch dim). */
    private static Operand operand(CpuTensor x, boolean trans, int rows, int cols, boolean tf32) {
        Object array = x.dtype() == DType.BF16 ? x.bf16() : x.f32();
        long batchStride = x.rank() == 3 ? (long) rows * cols : 0;
        return trans
                ? new Operand(array, tf32, 1, rows, batchStride)
                : new Operand(array, tf32, cols, 1, batchStride);
    }

    private static void run(ParallelRanges par, Operand a, Operand b, int batch, int m, int n, int k,
                            CpuTensor out, float alpha, float beta) {
        int tilesM = (m + TILE_M - 1) / TILE_M;
        int tilesN = (n + TILE_N - 1) / TILE_N;
        long units = (long) batch * tilesM * tilesN;
        long fmasPerUnit = Math.max(1L, (long) Math.min(m, TILE_M) * Math.min(n, TILE_N) * Math.max(k, 1));
        long grain = Math.max(1, FMAS_PER_TASK / fmasPerUnit);
        float[] outF32 = out.dtype() == DType.F32 ? out.f32() : null;
        short[] outBf16 = out.dtype() == DType.BF16 ? out.bf16() : null;
        par.forRange(units, grain, (s, e) -> {
            int tm = Math.min(m, TILE_M);
            int tn = Math.min(n, TILE_N);
            int tk = Math.min(k, TILE_K);
            float[] acc = new float[tm * tn];
            float[] packedA = new float[tm * tk];
            float[] packedB = new float[tk * tn];
            for (long u = s; u < e; u++) {
                int bi = (int) (u / ((long) tilesM * tilesN));
                int rest = (int) (u % ((long) tilesM * tilesN));
                int i0 = (rest / tilesN) * TILE_M;
                int j0 = (rest % tilesN) * TILE_N;
                int mb = Math.min(TILE_M, m - i0);
                int nb = Math.min(TILE_N, n - j0);
                java.util.Arrays.fill(acc, 0, mb * nb, 0f);
                for (int k0 = 0; k0 < k; k0 += TILE_K) {
                    int kb = Math.min(TILE_K, k - k0);
                    a.pack(bi, i0, mb, k0, kb, packedA);
                    b.pack(bi, k0, kb, j0, nb, packedB);
                    multiplyPanels(packedA, packedB, acc, mb, nb, kb);
                }
                long outBase = (long) bi * m * n + (long) i0 * n + j0;
                writeTile(acc, mb, nb, outF32, outBf16, (int) outBase, n, alpha, beta);
            }
        });
    }

    /**
     * acc[mb × nb] += pa[mb × kb] · pb[kb × nb]. The innermost loop runs over a contiguous row of pb, which the JIT
     * vectorizes; it updates two accumulator rows with four k terms each, so each accumulator load and store serves
     * four fused multiply-adds. Each element still sums its k terms one at a time in increasing k order.
     */
    private static void multiplyPanels(float[] pa, float[] pb, float[] acc, int mb, int nb, int kb) {
        int i = 0;
        for (; i + 2 <= mb; i += 2) {
            twoRows(pa, pb, acc, i, nb, kb);
        }
        if (i < mb) {
            oneRow(pa, pb, acc, i, nb, kb);
        }
    }

    private static void twoRows(float[] pa, float[] pb, float[] acc, int i, int nb, int kb) {
        int c0 = i * nb;
        int c1 = c0 + nb;
        int p0 = i * kb;
        int p1 = p0 + kb;
        int k = 0;
        for (; k + 4 <= kb; k += 4) {
            float a0 = pa[p0 + k];
            float a1 = pa[p0 + k + 1];
            float a2 = pa[p0 + k + 2];
            float a3 = pa[p0 + k + 3];
            float e0 = pa[p1 + k];
            float e1 = pa[p1 + k + 1];
            float e2 = pa[p1 + k + 2];
            float e3 = pa[p1 + k + 3];
            int b0 = k * nb;
            int b1 = b0 + nb;
            int b2 = b1 + nb;
            int b3 = b2 + nb;
            for (int j = 0; j < nb; j++) {
                float x0 = pb[b0 + j];
                float x1 = pb[b1 + j];
                float x2 = pb[b2 + j];
                float x3 = pb[b3 + j];
                acc[c0 + j] = Math.fma(a3, x3, Math.fma(a2, x2, Math.fma(a1, x1, Math.fma(a0, x0, acc[c0 + j]))));
                acc[c1 + j] = Math.fma(e3, x3, Math.fma(e2, x2, Math.fma(e1, x1, Math.fma(e0, x0, acc[c1 + j]))));
            }
        }
        for (; k < kb; k++) {
            float a0 = pa[p0 + k];
            float e0 = pa[p1 + k];
            int b0 = k * nb;
            for (int j = 0; j < nb; j++) {
                acc[c0 + j] = Math.fma(a0, pb[b0 + j], acc[c0 + j]);
                acc[c1 + j] = Math.fma(e0, pb[b0 + j], acc[c1 + j]);
            }
        }
    }

    private static void oneRow(float[] pa, float[] pb, float[] acc, int i, int nb, int kb) {
        int c0 = i * nb;
        int p0 = i * kb;
        int k = 0;
        for (; k + 4 <= kb; k += 4) {
            float a0 = pa[p0 + k];
            float a1 = pa[p0 + k + 1];
            float a2 = pa[p0 + k + 2];
            float a3 = pa[p0 + k + 3];
            int b0 = k * nb;
            int b1 = b0 + nb;
            int b2 = b1 + nb;
            int b3 = b2 + nb;
            for (int j = 0; j < nb; j++) {
                acc[c0 + j] = Math.fma(a3, pb[b3 + j], Math.fma(a2, pb[b2 + j],
                        Math.fma(a1, pb[b1 + j], Math.fma(a0, pb[b0 + j], acc[c0 + j]))));
            }
        }
        for (; k < kb; k++) {
            float a0 = pa[p0 + k];
            int b0 = k * nb;
            for (int j = 0; j < nb; j++) {
                acc[c0 + j] = Math.fma(a0, pb[b0 + j], acc[c0 + j]);
            }
        }
    }

    private static void writeTile(float[] acc, int mb, int nb, float[] outF32, short[] outBf16, int outBase,
                                  int ldOut, float alpha, float beta) {
        double al = alpha;
        double be = beta;
        for (int i = 0; i < mb; i++) {
            int o = outBase + i * ldOut;
            int t = i * nb;
            for (int j = 0; j < nb; j++) {
                double v = al * acc[t + j];
                if (outF32 != null) {
                    outF32[o + j] = (float) (beta == 0f ? v : v + be * outF32[o + j]);
                } else {
                    double old = beta == 0f ? 0.0 : be * Bf16.toFloat(outBf16[o + j]);
                    outBf16[o + j] = Bf16.fromFloat((float) (v + old));
                }
            }
        }
    }
}
