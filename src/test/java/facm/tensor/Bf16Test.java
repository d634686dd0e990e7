package facm.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class Bf16Test {

    private static short bits(float f) {
        return Bf16.fromFloat(f);
    }

    private static float fromBits(int b) {
        return Float.intBitsToFloat(b);
    }

    @Test
    void exactValuesRoundTrip() {
        for (float f : new float[] {0f, -0f, 1f, -2f, 0.5f, 3.140625f, 65280f}) {
            assertEquals(Float.floatToRawIntBits(f), Float.floatToRawIntBits(Bf16.round(f)), "value " + f);
        }
        assertEquals((short) 0x8000, bits(-0f), "negative zero keeps its sign");
    }

    @Test
    void tiesRoundToEven() {
        assertEquals((short) 0x3F80, bits(fromBits(0x3F808000)), "tie above an even mantissa stays");
        assertEquals((short) 0x3F82, bits(fromBits(0x3F818000)), "tie above an odd mantissa goes up");
        assertEquals((short) 0xBF82, bits(fromBits(0xBF818000)), "negative tie goes to even magnitude");
        assertEquals((short) 0x3F81, bits(fromBits(0x3F808001)), "just above a tie rounds up");
        assertEquals((short) 0x3F80, bits(fromBits(0x3F807FFF)), "just below a tie rounds down");
    }

    @Test
    void infinityNaNAndTheLargestValues() {
        assertEquals((short) 0x7F80, bits(Float.POSITIVE_INFINITY));
        assertEquals((short) 0xFF80, bits(Float.NEGATIVE_INFINITY));
        // A NaN whose payload sits only in the dropped low bits must not become infinity.
        short nan = bits(fromBits(0x7F800001));
        assertTrue(Float.isNaN(Bf16.toFloat(nan)), "signalling NaN stays NaN, got " + Integer.toHexString(nan));
        assertEquals((short) 0x7FC0, bits(Float.NaN));
        assertTrue(Float.isNaN(Bf16.toFloat(bits(fromBits(0xFFC00000)))));
        // Largest finite bf16 is 0x7F7F = (2 - 2^-7) · 2^127.
        assertEquals(fromBits(0x7F7F0000), Bf16.toFloat((short) 0x7F7F));
        assertEquals((short) 0x7F7F, bits(fromBits(0x7F7F7FFF)), "below the tie under 2^128 stays finite");
        assertEquals((short) 0x7F80, bits(fromBits(0x7F7F8000)), "the tie under 2^128 rounds to infinity");
        assertEquals((short) 0x7F80, bits(Float.MAX_VALUE), "float max rounds to infinity");
    }

    @Test
    void subnormalsRoundLikeNormals() {
        assertEquals((short) 0x0001, bits(fromBits(0x00010000)));
        assertEquals((short) 0x0000, bits(fromBits(0x00008000)), "tie to even zero");
        assertEquals((short) 0x0002, bits(fromBits(0x00018000)), "tie to even two");
        assertEquals((short) 0x0080, bits(fromBits(0x007FFFFF)), "largest subnormal rounds up to the smallest normal");
    }
}
