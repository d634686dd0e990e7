package facm.tensor;

/** bfloat16 bit conversions, round to nearest even; NaN stays NaN (quiet). Same rule as the CUDA kernels. */
public final class Bf16 {
    private Bf16() {
    }

    public static short fromFloat(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7F800000) == 0x7F800000 && (bits & 0x007FFFFF) != 0) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int rounding = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    public static float toFloat(short b) {
        return Float.intBitsToFloat((b & 0xFFFF) << 16);
    }

    /** Every bit pattern as a float. */
    public static float[] toFloats(short[] bits) {
        float[] values = new float[bits.length];
        for (int i = 0; i < bits.length; i++) {
            values[i] = toFloat(bits[i]);
        }
        return values;
    }

    /** The float nearest to f that bf16 can hold. */
    public static float round(float f) {
        return toFloat(fromFloat(f));
    }
}
