package facm.backend.cpu;

import static facm.backend.cpu.ReferenceData.nonZero;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * GEMM against a float64 reference computed from the same (rounded) inputs. Tolerance per element, from the
 * accuracy statement in {@link CpuGemm}: (k + 2) · 2^-24 · (|alpha| · Σ_k |a·b| + |beta · out_old|), plus 2^-8 ·
 * |expected| when out is bf16 (one bf16 rounding is at most 2^-9 relative; the margin covers the float step before).
 */
class CpuGemmTest {
    private static final CpuBackend CPU = new CpuBackend(2);
    private static final double U = 0x1p-24;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    /** Input precision and output dtype of one test case. */
    private enum Mode {
        FP32(GemmPrecision.FP32, DType.F32), TF32(GemmPrecision.TF32, DType.F32),
        BF16_TO_F32(GemmPrecision.BF16, DType.F32), BF16_TO_BF16(GemmPrecision.BF16, DType.BF16);

        final GemmPrecision precision;
        final DType out;

        Mode(GemmPrecision precision, DType out) {
            this.precision = precision;
            this.out = out;
        }

        DType in() {
            return precision == GemmPrecision.BF16 ? DType.BF16 : DType.F32;
        }

        /** The value the product really multiplies. */
        float input(float v) {
            return switch (this) {
                case FP32 -> v;
                case TF32 -> Tf32.round(v);
                case BF16_TO_F32, BF16_TO_BF16 -> Bf16.round(v);
            };
        }
    }

    /** A host-side operand: values (already in the input precision) and its tensor. */
    private record Operand(float[] values, Tensor tensor, boolean batched, int rows, int cols) {
        float at(int batch, int r, int c) {
            return values[((batched ? batch : 0) * rows + r) * cols + c];
        }
    }

    private static Operand operand(String name, Mode mode, long seed, boolean batched, int batch, int rows, int cols) {
        int n = (batched ? batch : 1) * rows * cols;
        float[] raw = nonZero(seed, n);
        int[] shape = batched ? new int[] {batch, rows, cols} : new int[] {rows, cols};
        Tensor t = mode.in() == DType.BF16 ? CPU.uploadBf16(name, toBf16(raw), shape) : CPU.upload(name, raw, shape);
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = mode.input(raw[i]);
        }
        return new Operand(values, t, batched, rows, cols);
    }

    private static short[] toBf16(float[] v) {
        short[] s = new short[v.length];
        for (int i = 0; i < v.length; i++) {
            s[i] = Bf16.fromFloat(v[i]);
        }
        return s;
    }

    /** Runs one product and checks every element; returns the result. */
    private static float[] check(Mode mode, boolean aBatched, boolean bBatched, boolean transA, boolean transB,
                                 int batch, int m, int n, int k, float alpha, float beta, long seed) {
        String what = mode + " a" + (aBatched ? "[b]" : "") + (transA ? "ᵀ" : "") + " b" + (bBatched ? "[b]" : "")
                + (transB ? "ᵀ" : "") + " m=" + m + " n=" + n + " k=" + k + " alpha=" + alpha + " beta=" + beta;
        Operand a = transA ? operand("a", mode, seed, aBatched, batch, k, m)
                : operand("a", mode, seed, aBatched, batch, m, k);
        Operand b = transB ? operand("b", mode, seed + 1, bBatched, batch, n, k)
                : operand("b", mode, seed + 1, bBatched, batch, k, n);
        boolean batched = aBatched || bBatched;
        int nb = batched ? batch : 1;
        int[] outShape = batched ? new int[] {batch, m, n} : new int[] {m, n};
        // beta = 0 must ignore the old contents, so they are NaN; otherwise they take part.
        float[] old = beta == 0f ? ReferenceData.nans(nb * m * n) : nonZero(seed + 2, nb * m * n);
        Tensor out;
        if (mode.out == DType.BF16) {
            old = Arrays.copyOf(old, old.length);
            short[] bits = toBf16(old);
            for (int i = 0; i < old.length; i++) {
                old[i] = Bf16.toFloat(bits[i]);
            }
            out = CPU.uploadBf16("out", bits, outShape);
        } else {
            out = CPU.upload("out", old, outShape);
        }
        CPU.gemm(a.tensor(), transA, b.tensor(), transB, out, alpha, beta, mode.precision);
        float[] got = CPU.download(out);
        for (int bi = 0; bi < nb; bi++) {
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double dot = 0;
                    double abs = 0;
                    for (int kk = 0; kk < k; kk++) {
                        double p = (double) (transA ? a.at(bi, kk, i) : a.at(bi, i, kk))
                                * (transB ? b.at(bi, j, kk) : b.at(bi, kk, j));
                        dot += p;
                        abs += Math.abs(p);
                    }
                    int o = (bi * m + i) * n + j;
                    double oldTerm = beta == 0f ? 0 : (double) beta * old[o];
                    double expected = alpha * dot + oldTerm;
                    double tol = (k + 2) * U * (Math.abs(alpha) * abs + Math.abs(oldTerm)) + Double.MIN_NORMAL;
                    if (mode.out == DType.BF16) {
                        tol += 0x1p-8 * Math.abs(expected);
                    }
                    if (!(Math.abs(got[o] - expected) <= tol)) {
                        fail(what + ": out[" + bi + "," + i + "," + j + "] = " + got[o] + ", expected " + expected
                                + " ± " + tol);
                    }
                }
            }
        }
        return got;
    }

    @Test
    void everyTransposeBatchPrecisionAndAlphaBetaCombination() {
        boolean[][] layouts = {{false, false}, {true, true}, {true, false}, {false, true}};
        float[][] alphaBeta = {{1f, 0f}, {-0.75f, 1.5f}};
        long seed = 1000;
        for (Mode mode : Mode.values()) {
            for (boolean[] layout : layouts) {
                for (int t = 0; t < 4; t++) {
                    for (float[] ab : alphaBeta) {
                        // k = 300 crosses a k-panel boundary; m and n are odd and smaller than a tile.
                        check(mode, layout[0], layout[1], (t & 1) != 0, (t & 2) != 0, 3, 37, 29, 300, ab[0], ab[1],
                                seed += 3);
                    }
                }
            }
        }
    }

    @Test
    void tilesLargerThanOneBlockInEveryDimension() {
        long seed = 2000;
        for (int t = 0; t < 4; t++) {
            check(Mode.FP32, true, false, (t & 1) != 0, (t & 2) != 0, 2, 131, 263, 300, 1f, 0f, seed += 3);
        }
        check(Mode.BF16_TO_BF16, false, true, false, true, 2, 70, 300, 40, 2f, -1f, seed + 10);
    }

    @Test
    void smallExactProduct() {
        Tensor a = CPU.upload("a", new float[] {1, 2, 3, 4}, 2, 2);
        Tensor b = CPU.upload("b", new float[] {5, 6, 7, 8}, 2, 2);
        assertArrayEquals(new float[] {19, 22, 43, 50}, CPU.download(CPU.matmul(a, false, b, false,
                GemmPrecision.FP32)));
        assertArrayEquals(new float[] {26, 30, 38, 44}, CPU.download(CPU.matmul(a, true, b, false,
                GemmPrecision.FP32)));
        assertArrayEquals(new float[] {17, 23, 39, 53}, CPU.download(CPU.matmul(a, false, b, true,
                GemmPrecision.FP32)));
        Tensor batched = CPU.matmul(CPU.upload("x", new float[] {1, 2, 3, 4, 5, 6, 7, 8}, 2, 2, 2), false, b, false,
                GemmPrecision.FP32);
        assertArrayEquals(new int[] {2, 2, 2}, batched.shape());
        assertArrayEquals(new float[] {19, 22, 43, 50, 67, 78, 91, 106}, CPU.download(batched));
    }

    @Test
    void emptyInnerDimensionScalesOut() {
        Tensor a = CPU.empty(DType.F32, 3, 0);
        Tensor b = CPU.empty(DType.F32, 0, 2);
        Tensor out = CPU.upload("out", new float[] {1, 2, 3, 4, 5, 6}, 3, 2);
        CPU.gemm(a, false, b, false, out, 1f, 2f, GemmPrecision.FP32);
        assertArrayEquals(new float[] {2, 4, 6, 8, 10, 12}, CPU.download(out));
        CPU.fill(out, Float.NaN);
        CPU.gemm(a, false, b, false, out, 1f, 0f, GemmPrecision.FP32);
        assertArrayEquals(new float[6], CPU.download(out));
    }

    /** TF32 must really round its inputs: the result fits the rounded-input reference, not the fp32 one. */
    @Test
    void tf32RoundsInputs() {
        float[] fp32 = check(Mode.FP32, false, false, false, false, 1, 16, 16, 64, 1f, 0f, 77);
        float[] tf32 = check(Mode.TF32, false, false, false, false, 1, 16, 16, 64, 1f, 0f, 77);
        int differ = 0;
        for (int i = 0; i < fp32.length; i++) {
            if (Math.abs(fp32[i] - tf32[i]) > 66 * U * 64 * 4) {
                differ++;
            }
        }
        assertTrue(differ > fp32.length / 2, "tf32 and fp32 results differ clearly in only " + differ + " elements");
    }

    @Test
    void tf32RoundingRule() {
        assertTrue(Tf32.round(1f + 0x1p-11f) == 1f + 0x1p-10f, "a tie rounds away from zero");
        assertTrue(Tf32.round(-(1f + 0x1p-11f)) == -(1f + 0x1p-10f), "a negative tie rounds away from zero");
        assertTrue(Tf32.round(1f + 0x1p-11f - 0x1p-23f) == 1f, "below the tie rounds down");
        assertTrue(Tf32.round(Float.MAX_VALUE) == Float.POSITIVE_INFINITY, "overflow rounds to infinity");
        assertTrue(Float.isNaN(Tf32.round(Float.intBitsToFloat(0x7F800001))), "NaN stays NaN");
        assertTrue(Tf32.round(Float.NEGATIVE_INFINITY) == Float.NEGATIVE_INFINITY);
        assertTrue(Tf32.round(1.5f) == 1.5f);
    }

    @Test
    void shapeAndDTypeErrorsDescribeTheProduct() {
        Tensor a = CPU.empty("a", DType.F32, 4, 5);
        Tensor b = CPU.empty("b", DType.F32, 6, 7);
        ShapeException inner = assertThrows(ShapeException.class,
                () -> CPU.gemm(a, false, b, false, CPU.empty(DType.F32, 4, 7), 1f, 0f, GemmPrecision.FP32));
        assertTrue(inner.getMessage().contains("gemm") && inner.getMessage().contains("a f32[4,5] cpu")
                && inner.getMessage().contains("b f32[6,7] cpu") && inner.getMessage().contains("inner"),
                inner.getMessage());
        ShapeException wrongOut = assertThrows(ShapeException.class, () -> CPU.gemm(a, false,
                CPU.empty(DType.F32, 5, 7), false, CPU.empty("o", DType.F32, 7, 4), 1f, 0f, GemmPrecision.FP32));
        assertTrue(wrongOut.getMessage().contains("o f32[7,4] cpu") && wrongOut.getMessage().contains("[4,7]"),
                wrongOut.getMessage());
        ShapeException batch = assertThrows(ShapeException.class, () -> CPU.gemm(CPU.empty(DType.F32, 2, 4, 5),
                false, CPU.empty(DType.F32, 3, 5, 7), false, CPU.empty(DType.F32, 2, 4, 7), 1f, 0f,
                GemmPrecision.FP32));
        assertTrue(batch.getMessage().contains("batch"), batch.getMessage());
        assertThrows(ShapeException.class, () -> CPU.gemm(a, true, CPU.empty(DType.F32, 4, 3), false,
                CPU.empty(DType.F32, 2, 5, 3), 1f, 0f, GemmPrecision.FP32));
        ShapeException precision = assertThrows(ShapeException.class, () -> CPU.gemm(a, false,
                CPU.empty(DType.F32, 5, 3), false, CPU.empty(DType.F32, 4, 3), 1f, 0f, GemmPrecision.BF16));
        assertTrue(precision.getMessage().contains("bf16 inputs"), precision.getMessage());
        assertThrows(ShapeException.class, () -> CPU.gemm(a, false, CPU.empty(DType.F32, 5, 3), false,
                CPU.empty(DType.BF16, 4, 3), 1f, 0f, GemmPrecision.FP32));
        assertThrows(ShapeException.class, () -> CPU.gemm(CPU.empty(DType.F32, 5), false, a, false,
                CPU.empty(DType.F32, 5), 1f, 0f, GemmPrecision.FP32));
        Tensor square = CPU.empty("sq", DType.F32, 4, 4);
        ShapeException alias = assertThrows(ShapeException.class,
                () -> CPU.gemm(square, false, CPU.empty(DType.F32, 4, 4), false, square.reshape(4, 4), 1f, 0f,
                        GemmPrecision.FP32));
        assertTrue(alias.getMessage().contains("share"), alias.getMessage());
        assertFalse(square.isClosed());
    }
}
