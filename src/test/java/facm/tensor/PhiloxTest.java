package facm.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class PhiloxTest {

    /**
     * Known answers for philox4x32-10 from the kat_vectors file of the Random123 distribution (D. E. Shaw
     * Research), as reproduced in DEShawResearch/fs123 core123/ut/ut_philox.cpp: counter words c0..c3, key words
     * k0, k1, then the four output words.
     */
    private static final int[][] KNOWN_ANSWERS = {
        {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
         0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };

    @Test
    void fullCounterRoundFunctionMatchesRandom123() {
        for (int[] v : KNOWN_ANSWERS) {
            int[] out = new int[4];
            Philox.block(v[0], v[1], v[2], v[3], v[4], v[5], out);
            assertArrayEquals(new int[] {v[6], v[7], v[8], v[9]}, out,
                    () -> String.format("counter %08x %08x %08x %08x key %08x %08x", v[0], v[1], v[2], v[3], v[4],
                            v[5]));
        }
    }

    @Test
    void seedAndCounterMapToLowAndHighWordsWithZeroUpperCounter() {
        long seed = 0x299f31d0_a4093822L;
        long counter = 0x85a308d3_243f6a88L;
        int[] viaLongs = new int[4];
        int[] viaWords = new int[4];
        Philox.block(seed, counter, viaLongs);
        Philox.block(0x243f6a88, 0x85a308d3, 0, 0, 0xa4093822, 0x299f31d0, viaWords);
        assertArrayEquals(viaWords, viaLongs);

        int[] zero = new int[4];
        Philox.block(0L, 0L, zero);
        assertArrayEquals(new int[] {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}, zero);
    }

    @Test
    void uniformAndNormalFollowTheDocumentedFormulas() {
        int[] w = new int[4];
        Philox.block(5L, 17L, w);
        double u0 = ((w[0] & 0xFFFFFFFFL) + 0.5) / 4294967296.0;
        double u1 = ((w[1] & 0xFFFFFFFFL) + 0.5) / 4294967296.0;
        assertEquals((float) u0, Philox.uniform(5L, 17L), 0f);
        assertEquals((float) (Math.sqrt(-2 * Math.log(u0)) * Math.cos(2 * Math.PI * u1)), Philox.normal(5L, 17L), 0f);
        assertEquals(Philox.normalOf(w), Philox.normal(5L, 17L), 0f);
        assertEquals(Philox.uniformOf(w), Philox.uniform(5L, 17L), 0f);
    }

    @Test
    void extremeWordsStayInsideTheOpenInterval() {
        double smallest = Philox.unit(0);
        double largest = Philox.unit(-1);
        assertEquals(0x1p-33, smallest, 0.0);
        assertEquals(1.0 - 0x1p-33, largest, 0.0);
    }
}
