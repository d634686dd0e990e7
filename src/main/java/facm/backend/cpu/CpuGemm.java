package facm.backend.cpu;

import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.ShapeException;

/**
 * The CPU matrix product, out = alpha · op(a) · op(b) + beta · out (contract: {@link facm.tensor.Backend#gemm}).
 *
 * <p>Method: op(b) is copied once per call into row arrays, one per k and column tile ({@link PackedB}), applying the
 * transpose and the mode's input rounding (tf32 rounding, bf16 widening); op(a) is read where it lies, through a row
 * and a column stride, because the kernel only loads single elements of it (after the same rounding, into a copy,
 * when the mode asks for one). The output is cut into tiles of up to {@link #TILE_M} × {@link #TILE_N} (smaller when
 * that gives too few tasks for the threads); each task owns whole tiles, so no two threads write the same element, and
 * accumulates a tile in row arrays. For each tile, k is walked in panels of {@link #TILE_K} (a panel of op(b) stays
 * in the L2 cache while the tile's rows pass over it), and the product runs in i-k-j order: for four rows of the tile
 * and four k at a time, scalars of op(a) times rows of op(b) are added to the tile's accumulator rows with
 * {@link Math#fma} (see {@link #fourRows}).
 *
 * <p>Why row arrays: the JIT (C2 in JDK 25) vectorizes a loop only when it can prove that no store in it changes what
 * a later iteration loads. Two float arrays may be the same object, so a loop that stores {@code acc[c + j]} and loads
 * {@code b[o + j]} with different offsets c and o stays scalar; with every access at index {@code j} of its own
 * array, from 0, the loop is vectorized (measured on the 2-core AVX-512 CI machine: ~12 GFLOP/s scalar, ~65 GFLOP/s
 * vectorized, one thread).
 *
 * <p>Accuracy: every output element is accumulated in fp32 over k in increasing order, one fused multiply-add (one
 * rounding) per term, so |computed − exact| ≤ k · 2^-24 · Σ_k |a_ik · b_kj| (the standard bound for recursive
 * summation; typical errors are about √k times smaller). The exact value here is the product of the inputs after
 * the mode's rounding (tf32 for TF32, the bf16 values for BF16). The epilogue alpha·acc + beta·out is computed in
 * float64 and rounded once to float (for a BF16 out, that float is then rounded to bf16, as a GPU epilogue does). When
 * beta is 0 the old out is not read, so NaN garbage in it does not leak into the result. The tiling never changes a
 * result: each element's sum has the same terms in the same order whatever the tile sizes and thread count.
 */
final class CpuGemm {
    static final int TILE_M = 64;
    static final int TILE_N = 256;
    static final int TILE_K = 256;
    /** Smallest tile sides when tiles are split to make enough tasks. */
    private static final int MIN_TILE_M = 16;
    private static final int MIN_TILE_N = 64;
    /** Tasks per thread worth aiming for, so unequal tiles even out. */
    private static final int TASKS_PER_THREAD = 4;
    /** Multiply-adds worth a task of their own. */
    private static final long FMAS_PER_TASK = 1 << 18;
    /** Below this many output columns, and with this deep a k, a weight gradient is computed transposed. */
    private static final int SHORT_N = 128;
    private static final int LONG_K = 1024;
    /** Elements per task when operands are converted or transposed before the product. */
    private static final long ELEMENTS_PER_TASK = 1 << 15;

    /**
     * An fp32 operand as a matrix op(x) inside a flat array: element (r, c) of batch entry b is at
     * b·batchStride + r·rowStride + c·colStride. A 2-D operand broadcast over the batch has batchStride 0.
     */
    private record Operand(float[] data, int rowStride, int colStride, long batchStride) {
        int at(int b, int r, int c) {
            return (int) (b * batchStride + (long) r * rowStride + (long) c * colStride);
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
        if (transA && n < SHORT_N && m >= 2 * n && k >= LONG_K) {
            // A weight gradient xᵀ·dy with few output columns: the vector loop would be short, so compute
            // outᵀ = op(b)ᵀ · x instead, whose rows are op(a)ᵀ = a's own rows. Each element is the same sum in the
            // same order (fma(x, y, acc) = fma(y, x, acc)); the tile is written back transposed.
            Operand opBt = operandA(par, b, !transB, n, k, tf32);
            Tiling tiling = Tiling.of(par.threads(), batch, n, m);
            PackedB opAt = PackedB.pack(par, a, false, k, m, tf32, tiling.tileN());
            run(par, opBt, opAt, batch, n, m, k, tiling, out, alpha, beta, true);
            return;
        }
        Operand opA = operandA(par, a, transA, m, k, tf32);
        Tiling tiling = Tiling.of(par.threads(), batch, m, n);
        PackedB opB = PackedB.pack(par, b, transB, k, n, tf32, tiling.tileN());
        run(par, opA, opB, batch, m, n, k, tiling, out, alpha, beta, false);
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

    /** op(a) as rows × cols, read in place (after tf32 rounding or bf16 widening into a copy, if the mode asks). */
    private static Operand operandA(ParallelRanges par, CpuTensor x, boolean trans, int rows, int cols,
                                    boolean tf32) {
        float[] data = fp32Values(par, x, tf32);
        long batchStride = x.rank() == 3 ? (long) rows * cols : 0;
        return trans ? new Operand(data, 1, rows, batchStride) : new Operand(data, cols, 1, batchStride);
    }

    /** x's values as fp32: its own array (f32 without tf32 rounding) or a rounded/widened copy. */
    private static float[] fp32Values(ParallelRanges par, CpuTensor x, boolean tf32) {
        if (x.dtype() == DType.F32 && !tf32) {
            return x.f32();
        }
        float[] src = x.dtype() == DType.F32 ? x.f32() : null;
        short[] bits = x.dtype() == DType.BF16 ? x.bf16() : null;
        float[] dst = new float[Math.toIntExact(x.numel())];
        par.forRange(dst.length, ELEMENTS_PER_TASK, (s, e) -> {
            for (int i = (int) s; i < e; i++) {
                float v = src != null ? src[i] : Bf16.toFloat(bits[i]);
                dst[i] = tf32 ? Tf32.round(v) : v;
            }
        });
        return dst;
    }

    /**
     * Tile sides: the defaults evened out over each dimension, then halved (M first, which costs no vector length)
     * until there are enough tasks for the threads or the minimum sides are reached.
     */
    private record Tiling(int tileM, int tileN, int tilesM, int tilesN) {
        static Tiling of(int threads, int batch, int m, int n) {
            int want = threads == 1 ? 1 : threads * TASKS_PER_THREAD;
            int tm = evenTile(m, TILE_M);
            int tn = evenTile(n, TILE_N);
            while (tasks(batch, m, n, tm, tn) < want && (tm > MIN_TILE_M || tn > MIN_TILE_N)) {
                if (tm > MIN_TILE_M) {
                    tm = Math.max(MIN_TILE_M, evenTile(m, tm / 2));
                } else {
                    tn = Math.max(MIN_TILE_N, evenTile(n, tn / 2));
                }
            }
            return new Tiling(tm, tn, (m + tm - 1) / tm, (n + tn - 1) / tn);
        }

        /** {@code size} split into equal tiles of at most {@code max}, rounded up to a multiple of 16 (a vector). */
        private static int evenTile(int size, int max) {
            int tiles = Math.max(1, (size + max - 1) / max);
            int even = (size + tiles - 1) / tiles;
            return Math.max(1, Math.min(max, (even + 15) / 16 * 16));
        }

        private static long tasks(int batch, int m, int n, int tm, int tn) {
            return (long) batch * ((m + tm - 1) / tm) * ((n + tn - 1) / tn);
        }
    }

    /**
     * op(b) as fp32 row arrays: for batch entry e (0 when b is broadcast), column tile t and k index kk, the row
     * {@code rows[(e·tilesN + t)·k + kk]} holds op(b)[kk, t·tileN + j] at index j, from 0 (see the class comment).
     */
    private record PackedB(float[][] rows, int k, int tilesN, boolean perEntry) {
        static PackedB pack(ParallelRanges par, CpuTensor x, boolean trans, int k, int n, boolean tf32, int tileN) {
            int entries = x.rank() == 3 ? x.dim(0) : 1;
            int tilesN = Math.max(1, (n + tileN - 1) / tileN);
            float[] src = x.dtype() == DType.F32 ? x.f32() : null;
            short[] bits = x.dtype() == DType.BF16 ? x.bf16() : null;
            boolean plainCopy = src != null && !trans && !tf32;
            float[][] rows = new float[Math.toIntExact((long) entries * tilesN * k)][];
            par.forRange(rows.length, Math.max(1, ELEMENTS_PER_TASK / Math.max(1, n / tilesN)), (s, e) -> {
                for (long r = s; r < e; r++) {
                    int kk = (int) (r % k), tile = (int) (r / k % tilesN), entry = (int) (r / k / tilesN);
                    int j0 = tile * tileN, nb = Math.min(tileN, n - j0);
                    long base = (long) entry * k * n;
                    float[] row = new float[nb];
                    if (plainCopy) {
                        System.arraycopy(src, (int) (base + (long) kk * n + j0), row, 0, nb);
                    } else {
                        // x holds [k, n] per entry, or [n, k] when transposed.
                        for (int j = 0; j < nb; j++) {
                            int at = (int) (base + (trans ? (long) (j0 + j) * k + kk : (long) kk * n + j0 + j));
                            float v = src != null ? src[at] : Bf16.toFloat(bits[at]);
                            row[j] = tf32 ? Tf32.round(v) : v;
                        }
                    }
                    rows[(int) r] = row;
                }
            });
            return new PackedB(rows, k, tilesN, entries > 1);
        }

        /** Index in {@link #rows} of op(b)[kk = 0] for batch entry {@code entry} and column tile {@code tile}. */
        int first(int entry, int tile) {
            return ((perEntry ? entry : 0) * tilesN + tile) * k;
        }
    }

    /**
     * The tiled product of m × n (per batch entry) into out, or, with {@code transposedOut}, of outᵀ: then out is
     * [n, m] per entry and tile element (i, j) goes to out[j][i].
     */
    private static void run(ParallelRanges par, Operand a, PackedB b, int batch, int m, int n, int k, Tiling t,
                            CpuTensor out, float alpha, float beta, boolean transposedOut) {
        int tm = t.tileM(), tn = t.tileN(), tilesM = t.tilesM(), tilesN = t.tilesN();
        long units = (long) batch * tilesM * tilesN;
        long fmasPerUnit = Math.max(1L, (long) Math.min(m, tm) * Math.min(n, tn) * Math.max(k, 1));
        long grain = Math.max(1, FMAS_PER_TASK / fmasPerUnit);
        float[] outF32 = out.dtype() == DType.F32 ? out.f32() : null;
        short[] outBf16 = out.dtype() == DType.BF16 ? out.bf16() : null;
        par.forRange(units, grain, (s, e) -> {
            float[][] acc = new float[Math.min(m, tm)][Math.min(n, tn)];
            float[] staged = new float[Math.min(n, tn)];
            for (long u = s; u < e; u++) {
                int bi = (int) (u / ((long) tilesM * tilesN));
                int rest = (int) (u % ((long) tilesM * tilesN));
                int i0 = (rest / tilesN) * tm;
                int tile = rest % tilesN;
                int j0 = tile * tn;
                int mb = Math.min(tm, m - i0);
                int nb = Math.min(tn, n - j0);
                for (int i = 0; i < mb; i++) {
                    java.util.Arrays.fill(acc[i], 0, nb, 0f);
                }
                int first = b.first(bi, tile);
                for (int k0 = 0; k0 < k; k0 += TILE_K) {
                    int kb = Math.min(TILE_K, k - k0);
                    int i = 0;
                    for (; i + 4 <= mb; i += 4) {
                        fourRows(a, a.at(bi, i0 + i, k0), b.rows(), first + k0, acc, i, nb, kb);
                    }
                    for (; i < mb; i++) {
                        oneRow(a, a.at(bi, i0 + i, k0), b.rows(), first + k0, acc[i], nb, kb);
                    }
                }
                if (transposedOut) {
                    long outBase = (long) bi * m * n + (long) j0 * m + i0;
                    writeTileTransposed(acc, mb, nb, outF32, outBf16, (int) outBase, m, alpha, beta);
                } else {
                    long outBase = (long) bi * m * n + (long) i0 * n + j0;
                    writeTile(acc, mb, nb, outF32, outBf16, (int) outBase, n, alpha, beta, staged);
                }
            }
        });
    }

    /**
     * Accumulator rows i..i+3 += four rows of op(a) (from aRow, k0 on) · the kb-deep panel of op(b) rows starting at
     * bRows[b]: for each group of four k, sixteen scalars of op(a) and four rows of op(b); the loop over j, the same
     * index of six arrays, is vectorized, and each accumulator load and store serves four fused multiply-adds. Each
     * element still adds its k terms one at a time in increasing k order.
     */
    private static void fourRows(Operand a, int aRow, float[][] bRows, int b, float[][] acc, int i, int nb,
                                 int kb) {
        float[] pa = a.data();
        int rs = a.rowStride(), cs = a.colStride();
        float[] c0 = acc[i], c1 = acc[i + 1], c2 = acc[i + 2], c3 = acc[i + 3];
        int r0 = aRow, r1 = r0 + rs, r2 = r1 + rs, r3 = r2 + rs;
        int kk = 0;
        for (; kk + 4 <= kb; kk += 4) {
            int q0 = kk * cs, q1 = q0 + cs, q2 = q1 + cs, q3 = q2 + cs;
            float a0 = pa[r0 + q0], a1 = pa[r0 + q1], a2 = pa[r0 + q2], a3 = pa[r0 + q3];
            float e0 = pa[r1 + q0], e1 = pa[r1 + q1], e2 = pa[r1 + q2], e3 = pa[r1 + q3];
            float f0 = pa[r2 + q0], f1 = pa[r2 + q1], f2 = pa[r2 + q2], f3 = pa[r2 + q3];
            float g0 = pa[r3 + q0], g1 = pa[r3 + q1], g2 = pa[r3 + q2], g3 = pa[r3 + q3];
            float[] b0 = bRows[b + kk], b1 = bRows[b + kk + 1], b2 = bRows[b + kk + 2], b3 = bRows[b + kk + 3];
            for (int j = 0; j < nb; j++) {
                float x0 = b0[j], x1 = b1[j], x2 = b2[j], x3 = b3[j];
                c0[j] = Math.fma(a3, x3, Math.fma(a2, x2, Math.fma(a1, x1, Math.fma(a0, x0, c0[j]))));
                c1[j] = Math.fma(e3, x3, Math.fma(e2, x2, Math.fma(e1, x1, Math.fma(e0, x0, c1[j]))));
                c2[j] = Math.fma(f3, x3, Math.fma(f2, x2, Math.fma(f1, x1, Math.fma(f0, x0, c2[j]))));
                c3[j] = Math.fma(g3, x3, Math.fma(g2, x2, Math.fma(g1, x1, Math.fma(g0, x0, c3[j]))));
            }
        }
        for (; kk < kb; kk++) {
            int q0 = kk * cs;
            float a0 = pa[r0 + q0], e0 = pa[r1 + q0], f0 = pa[r2 + q0], g0 = pa[r3 + q0];
            float[] b0 = bRows[b + kk];
            for (int j = 0; j < nb; j++) {
                float x0 = b0[j];
                c0[j] = Math.fma(a0, x0, c0[j]);
                c1[j] = Math.fma(e0, x0, c1[j]);
                c2[j] = Math.fma(f0, x0, c2[j]);
                c3[j] = Math.fma(g0, x0, c3[j]);
            }
        }
    }

    /** One accumulator row, four k at a time (the rows left over by {@link #fourRows}). */
    private static void oneRow(Operand a, int aRow, float[][] bRows, int b, float[] c0, int nb, int kb) {
        float[] pa = a.data();
        int cs = a.colStride();
        int kk = 0;
        for (; kk + 4 <= kb; kk += 4) {
            float a0 = pa[aRow + kk * cs], a1 = pa[aRow + (kk + 1) * cs];
            float a2 = pa[aRow + (kk + 2) * cs], a3 = pa[aRow + (kk + 3) * cs];
            float[] b0 = bRows[b + kk], b1 = bRows[b + kk + 1], b2 = bRows[b + kk + 2], b3 = bRows[b + kk + 3];
            for (int j = 0; j < nb; j++) {
                c0[j] = Math.fma(a3, b3[j], Math.fma(a2, b2[j], Math.fma(a1, b1[j], Math.fma(a0, b0[j], c0[j]))));
            }
        }
        for (; kk < kb; kk++) {
            float a0 = pa[aRow + kk * cs];
            float[] b0 = bRows[b + kk];
            for (int j = 0; j < nb; j++) {
                c0[j] = Math.fma(a0, b0[j], c0[j]);
            }
        }
    }

    /** out[j][i] ← alpha·acc[i][j] + beta·out[j][i] (float64, rounded once), out rows ldOut apart. */
    private static void writeTileTransposed(float[][] acc, int mb, int nb, float[] outF32, short[] outBf16,
                                            int outBase, int ldOut, float alpha, float beta) {
        double al = alpha;
        double be = beta;
        for (int i = 0; i < mb; i++) {
            float[] row = acc[i];
            for (int j = 0; j < nb; j++) {
                int o = outBase + j * ldOut + i;
                double v = al * row[j];
                if (outF32 != null) {
                    outF32[o] = (float) (beta == 0f ? v : v + be * outF32[o]);
                } else {
                    double old = beta == 0f ? 0.0 : be * Bf16.toFloat(outBf16[o]);
                    outBf16[o] = Bf16.fromFloat((float) (v + old));
                }
            }
        }
    }

    /**
     * out rows ← alpha·acc + beta·out (float64, rounded once). An f32 row goes through {@code staged} (copied in and
     * out with {@link System#arraycopy}) so that the arithmetic loop indexes its arrays alike and is vectorized; with
     * alpha 1 and beta 0 the accumulator row is the result and is copied straight out.
     */
    private static void writeTile(float[][] acc, int mb, int nb, float[] outF32, short[] outBf16, int outBase,
                                  int ldOut, float alpha, float beta, float[] staged) {
        double al = alpha;
        double be = beta;
        for (int i = 0; i < mb; i++) {
            int o = outBase + i * ldOut;
            float[] row = acc[i];
            if (outF32 != null && alpha == 1f && beta == 0f) {
                System.arraycopy(row, 0, outF32, o, nb);
            } else if (outF32 != null) {
                if (beta == 0f) {
                    for (int j = 0; j < nb; j++) {
                        staged[j] = (float) (al * row[j]);
                    }
                } else {
                    System.arraycopy(outF32, o, staged, 0, nb);
                    for (int j = 0; j < nb; j++) {
                        staged[j] = (float) (al * row[j] + be * staged[j]);
                    }
                }
                System.arraycopy(staged, 0, outF32, o, nb);
            } else {
                for (int j = 0; j < nb; j++) {
                    double v = al * row[j];
                    double old = beta == 0f ? 0.0 : be * Bf16.toFloat(outBf16[o + j]);
                    outBf16[o + j] = Bf16.fromFloat((float) (v + old));
                }
            }
        }
    }
}
