package facm.backend.cpu;

import facm.tensor.Bf16;

/** Dtype conversions on arrays, with the rounding rules the CUDA conversions must reproduce bit for bit. */
final class ConversionOps {
    private static final long GRAIN = ElementwiseOps.CHEAP_GRAIN;

    private ConversionOps() {
    }

    /** Round to nearest even; NaN stays a (quiet) NaN; overflow past the largest bf16 gives infinity. */
    static void f32ToBf16(ParallelRanges par, float[] src, short[] dst) {
        par.forRange(src.length, GRAIN, (s, e) -> {
            for (int i = (int) s; i < (int) e; i++) {
                dst[i] = Bf16.fromFloat(src[i]);
            }
        });
    }

    /** Exact: every bf16 is a float. */
    static void bf16ToF32(ParallelRanges par, short[] src, float[] dst) {
        par.forRange(src.length, GRAIN, (s, e) -> {
            for (int i = (int) s; i < (int) e; i++) {
                dst[i] = Bf16.toFloat(src[i]);
            }
        });
    }

    /**
     * Truncation toward zero. Java's cast also saturates at the int range and maps NaN to 0, the same as CUDA's
     * {@code __float2int_rz} (cvt.rzi.s32.f32).
     */
    static void f32ToI32(ParallelRanges par, float[] src, int[] dst) {
        par.forRange(src.length, GRAIN, (s, e) -> {
            for (int i = (int) s; i < (int) e; i++) {
                dst[i] = (int) src[i];
            }
        });
    }

    /** Round to nearest even above 2^24, like {@code __int2float_rn}. */
    static void i32ToF32(ParallelRanges par, int[] src, float[] dst) {
        par.forRange(src.length, GRAIN, (s, e) -> {
            for (int i = (int) s; i < (int) e; i++) {
                dst[i] = src[i];
            }
        });
    }
}
