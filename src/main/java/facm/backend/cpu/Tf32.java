package facm.backend.cpu;

/**
 * TensorFloat-32 input rounding: a float keeps its sign, its 8 exponent bits and the top 10 of its 23 mantissa
 * bits. Rounds to nearest with ties away from zero, like the PTX instruction {@code cvt.rna.tf32.f32}; a value
 * that rounds past the largest finite tf32 becomes infinity. Infinities and NaNs pass through unchanged.
 */
public final class Tf32 {
    /** The 13 low mantissa bits tf32 drops. */
    private static final int DROPPED_BITS = 0x1FFF;
    private static final int HALF_OF_DROPPED = 0x1000;

    private Tf32() {
    }

    public static float round(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7F800000) == 0x7F800000) {
            return f;
        }
        // Adding half an ulp to the magnitude bits and truncating rounds the magnitude half-up, i.e. ties away
        // from zero; a carry out of the mantissa correctly bumps the exponent.
        return Float.intBitsToFloat((bits + HALF_OF_DROPPED) & ~DROPPED_BITS);
    }
}
