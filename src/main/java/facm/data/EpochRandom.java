package facm.data;

import facm.tensor.Philox;

/**
 * The data pipeline's randomness, all counter-based ({@link Philox}), so that what epoch e does is a pure function of
 * (seed, e) and a resumed run can recompute any epoch without replaying the ones before it.
 *
 * <p>Each use draws from its own Philox key, derived from (seed, purpose, epoch) by one Philox block, so the shuffle and
 * the flip choice of an epoch are independent streams and neighbouring epochs share nothing.
 */
public final class EpochRandom {
    /** Purpose tags ("perm", "flip" in ASCII), mixed into the seed before deriving a key. */
    static final long SHUFFLE = 0x7065726dL << 32;
    static final long FLIP = 0x666c6970L << 32;

    private EpochRandom() {
    }

    /** The Philox key for one purpose in one epoch: the first two output words of block(seed ^ purpose, epoch). */
    static long key(long seed, long purpose, long epoch) {
        int[] w = new int[4];
        Philox.block(seed ^ purpose, epoch, w);
        return (w[0] & 0xFFFFFFFFL) | ((long) w[1] << 32);
    }

    /**
     * The order in which epoch {@code epoch} visits indices {@code 0..n-1}: Fisher–Yates from the top, swap partner of
     * position i drawn from counter i as floor(r · (i + 1) / 2^64) with r the 64-bit word (w1, w0), whose bias is
     * below n / 2^64.
     */
    public static int[] permutation(long seed, long epoch, int n) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        long key = key(seed, SHUFFLE, epoch);
        int[] w = new int[4];
        for (int i = n - 1; i > 0; i--) {
            Philox.block(key, i, w);
            long r = (w[0] & 0xFFFFFFFFL) | ((long) w[1] << 32);
            int j = (int) Math.unsignedMultiplyHigh(r, i + 1L);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    /** A fair coin for sample {@code index} in epoch {@code epoch}: true with probability ½ (the flipped latent). */
    public static boolean flip(long seed, long epoch, long index) {
        return Philox.uniform(key(seed, FLIP, epoch), index) < 0.5f;
    }
}
