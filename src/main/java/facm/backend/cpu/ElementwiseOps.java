package facm.backend.cpu;

import facm.tensor.BinaryOp;
import facm.tensor.UnaryOp;

/**
 * Elementwise kernels on float arrays (the shape checks are in {@link CpuBackend}). Every op is written so that
 * {@code out} may be the same array as an input: element i is read before element i is written and no other
 * element is touched.
 *
 * <p>Accuracy: transcendental functions are evaluated in float64 and rounded once to float, so results are the
 * correctly rounded exact value except in rare double-rounding cases (within 1 ulp). Single float operations
 * (SQUARE, the binary ops) are exactly rounded. MAX and MIN follow {@link Math#max(float, float)}: a NaN operand
 * gives NaN, and +0 is larger than -0.
 */
final class ElementwiseOps {
    /** Indices per task for a cheap op (a load, an add, a store). */
    static final long CHEAP_GRAIN = 1 << 15;
    /** Indices per task for an op that calls exp/log/tanh/cos. */
    static final long COSTLY_GRAIN = 1 << 12;
    /** A repeating operand this long or longer is applied through a staging row (see {@link #binary}). */
    private static final int STAGED_PERIOD = 16;

    private ElementwiseOps() {
    }

    static void unary(ParallelRanges par, UnaryOp op, float[] x, float[] out) {
        long grain = switch (op) {
            case NEG, ABS, SQUARE, SQRT -> CHEAP_GRAIN;
            default -> COSTLY_GRAIN;
        };
        par.forRange(x.length, grain, (s, e) -> unaryRange(op, x, out, (int) s, (int) e));
    }

    private static void unaryRange(UnaryOp op, float[] x, float[] out, int from, int to) {
        switch (op) {
            case NEG -> {
                for (int i = from; i < to; i++) {
                    out[i] = -x[i];
                }
            }
            case ABS -> {
                for (int i = from; i < to; i++) {
                    out[i] = Math.abs(x[i]);
                }
            }
            case EXP -> {
                for (int i = from; i < to; i++) {
                    out[i] = (float) Math.exp(x[i]);
                }
            }
            case LOG -> {
                for (int i = from; i < to; i++) {
                    out[i] = (float) Math.log(x[i]);
                }
            }
            case SQRT -> {
                // The float64 root of a float, rounded to float, is the correctly rounded float root.
                for (int i = from; i < to; i++) {
                    out[i] = (float) Math.sqrt(x[i]);
                }
            }
            case RSQRT -> {
                for (int i = from; i < to; i++) {
                    out[i] = (float) (1.0 / Math.sqrt(x[i]));
                }
            }
            case SQUARE -> {
                for (int i = from; i < to; i++) {
                    out[i] = x[i] * x[i];
                }
            }
            case SIGMOID -> {
                // 1 / (1 + e^-x): for very negative x, e^-x overflows to +inf and the result is the correct 0.
                for (int i = from; i < to; i++) {
                    out[i] = (float) (1.0 / (1.0 + Math.exp(-(double) x[i])));
                }
            }
            case SILU -> {
                for (int i = from; i < to; i++) {
                    double v = x[i];
                    out[i] = (float) (v / (1.0 + Math.exp(-v)));
                }
            }
            case TANH -> {
                for (int i = from; i < to; i++) {
                    out[i] = (float) Math.tanh(x[i]);
                }
            }
            case COS -> {
                for (int i = from; i < to; i++) {
                    out[i] = (float) Math.cos(x[i]);
                }
            }
            case SIN -> {
                for (int i = from; i < to; i++) {
                    out[i] = (float) Math.sin(x[i]);
                }
            }
        }
    }

    /**
     * out[i] = op(a[i], b[i mod b.length]): covers b of a's shape, b equal to a's trailing dimensions (its
     * elements repeat every b.length), and a one-element b.
     *
     * <p>The JIT vectorizes a loop over float arrays only when every array is indexed alike (it cannot rule out that
     * out and b are one array, see {@link CpuGemm}). So a's shape and the scalar case index everything by i, and a
     * repeating b is applied one whole period at a time through a staging row: a's period copied in, combined with
     * b at the same index, copied out. Runs cut by a chunk boundary take the plain loop.
     */
    static void binary(ParallelRanges par, BinaryOp op, float[] a, float[] b, float[] out) {
        int period = b.length;
        par.forRange(a.length, CHEAP_GRAIN, (s, e) -> {
            int from = (int) s;
            int to = (int) e;
            if (period == 1) {
                binaryScalar(op, a, b[0], out, from, to);
                return;
            }
            if (period == a.length) {
                binarySame(op, a, b, out, from, to);
                return;
            }
            float[] stage = period >= STAGED_PERIOD ? new float[period] : null;
            int i = from;
            while (i < to) {
                int j = i % period;
                int run = Math.min(to - i, period - j);
                if (stage != null && run == period) {
                    System.arraycopy(a, i, stage, 0, period);
                    binarySame(op, stage, b, stage, 0, period);
                    System.arraycopy(stage, 0, out, i, period);
                } else {
                    binaryRun(op, a, i, b, j, out, run);
                }
                i += run;
            }
        });
    }

    /** out[i] = op(a[i], b[i]) for i in [from, to). */
    private static void binarySame(BinaryOp op, float[] a, float[] b, float[] out, int from, int to) {
        switch (op) {
            case ADD -> {
                for (int i = from; i < to; i++) {
                    out[i] = a[i] + b[i];
                }
            }
            case SUB -> {
                for (int i = from; i < to; i++) {
                    out[i] = a[i] - b[i];
                }
            }
            case MUL -> {
                for (int i = from; i < to; i++) {
                    out[i] = a[i] * b[i];
                }
            }
            case DIV -> {
                for (int i = from; i < to; i++) {
                    out[i] = a[i] / b[i];
                }
            }
            case MAX -> {
                for (int i = from; i < to; i++) {
                    out[i] = Math.max(a[i], b[i]);
                }
            }
            case MIN -> {
                for (int i = from; i < to; i++) {
                    out[i] = Math.min(a[i], b[i]);
                }
            }
        }
    }

    private static void binaryRun(BinaryOp op, float[] a, int ai, float[] b, int bi, float[] out, int n) {
        switch (op) {
            case ADD -> {
                for (int t = 0; t < n; t++) {
                    out[ai + t] = a[ai + t] + b[bi + t];
                }
            }
            case SUB -> {
                for (int t = 0; t < n; t++) {
                    out[ai + t] = a[ai + t] - b[bi + t];
                }
            }
            case MUL -> {
                for (int t = 0; t < n; t++) {
                    out[ai + t] = a[ai + t] * b[bi + t];
                }
            }
            case DIV -> {
                for (int t = 0; t < n; t++) {
                    out[ai + t] = a[ai + t] / b[bi + t];
                }
            }
            case MAX -> {
                for (int t = 0; t < n; t++) {
                    out[ai + t] = Math.max(a[ai + t], b[bi + t]);
                }
            }
            case MIN -> {
                for (int t = 0; t < n; t++) {
                    out[ai + t] = Math.min(a[ai + t], b[bi + t]);
                }
            }
        }
    }

    private static void binaryScalar(BinaryOp op, float[] a, float b, float[] out, int from, int to) {
        switch (op) {
            case ADD -> {
                for (int i = from; i < to; i++) {
                    out[i] = a[i] + b;
                }
            }
            case SUB -> {
                for (int i = from; i < to; i++) {
                    out[i] = a[i] - b;
                }
            }
            case MUL -> {
                for (int i = from; i < to; i++) {
                    out[i] = a[i] * b;
                }
            }
            case DIV -> {
                for (int i = from; i < to; i++) {
                    out[i] = a[i] / b;
                }
            }
            case MAX -> {
                for (int i = from; i < to; i++) {
                    out[i] = Math.max(a[i], b);
                }
            }
            case MIN -> {
                for (int i = from; i < to; i++) {
                    out[i] = Math.min(a[i], b);
                }
            }
        }
    }

    /**
     * out = alpha * x + beta, evaluated in float64 (the product of two floats is exact there) and rounded once, so
     * the result is the float nearest the exact value up to a rare double rounding; an fmaf on the GPU agrees.
     */
    static void affine(ParallelRanges par, float[] x, float alpha, float beta, float[] out) {
        double al = alpha;
        double be = beta;
        par.forRange(x.length, CHEAP_GRAIN, (s, e) -> {
            for (int i = (int) s; i < (int) e; i++) {
                out[i] = (float) (al * x[i] + be);
            }
        });
    }

    /** out = alpha * a + beta * b, in float64 and rounded once (both products are exact in float64). */
    static void axpby(ParallelRanges par, float alpha, float[] a, float beta, float[] b, float[] out) {
        double al = alpha;
        double be = beta;
        par.forRange(a.length, CHEAP_GRAIN, (s, e) -> {
            for (int i = (int) s; i < (int) e; i++) {
                out[i] = (float) (al * a[i] + be * b[i]);
            }
        });
    }
}
