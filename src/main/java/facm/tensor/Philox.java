package facm.tensor;

/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), the counter-based
 * generator both backends use, so that the same seed gives the same numbers on CPU and GPU. The CUDA twin is in
 * kernels/random.cu and must stay bit-identical to this class.
 *
 * <p>Counter layout: c0 = low 32 bits of the 64-bit counter, c1 = high 32 bits, c2 = c3 = 0; key = (low, high) of
 * the seed. A uniform uses output word 0: u = (w0 + 0.5) · 2^-32 in (0,1). A normal uses words 0 and 1 with
 * Box–Muller in float64: sqrt(-2 ln u0) · cos(2π u1), rounded to float.
 */
public final class Philox {
    private static final int M0 = 0xD2511F53;
    private static final int M1 = 0xCD9E8D57;
    private static final int W0 = 0x9E3779B9;
    private static final int W1 = 0xBB67AE85;
    private static final double TWO_POW_M32 = 1.0 / 4294967296.0;

    private Philox() {
    }

    /** The four output words for (seed, counter), written into {@code out}. */
    public static void block(long seed, long counter, int[] out) {
        block((int) counter, (int) (counter >>> 32), 0, 0, (int) seed, (int) (seed >>> 32), out);
    }

    /**
     * The full philox4x32-10 bijection on a four-word counter and two-word key, as in Random123. {@link #block(long,
     * long, int[])} uses it with c2 = c3 = 0; this overload exists so tests can check the published known answers,
     * which set all four counter words.
     */
    static void block(int c0, int c1, int c2, int c3, int k0, int k1, int[] out) {
        for (int round = 0; round < 10; round++) {
            long p0 = (M0 & 0xFFFFFFFFL) * (c0 & 0xFFFFFFFFL);
            long p1 = (M1 & 0xFFFFFFFFL) * (c2 & 0xFFFFFFFFL);
            int hi0 = (int) (p0 >>> 32);
            int lo0 = (int) p0;
            int hi1 = (int) (p1 >>> 32);
            int lo1 = (int) p1;
            c0 = hi1 ^ c1 ^ k0;
            c1 = lo1;
            c2 = hi0 ^ c3 ^ k1;
            c3 = lo0;
            k0 += W0;
            k1 += W1;
        }
        out[0] = c0;
        out[1] = c1;
        out[2] = c2;
        out[3] = c3;
    }

    static double unit(int word) {
        return ((word & 0xFFFFFFFFL) + 0.5) * TWO_POW_M32;
    }

    public static float uniform(long seed, long counter) {
        int[] w = new int[4];
        block(seed, counter, w);
        return (float) unit(w[0]);
    }

    public static float normal(long seed, long counter) {
        int[] w = new int[4];
        block(seed, counter, w);
        return normalOf(w);
    }

    /** Box–Muller on words 0 and 1 of an already computed block. */
    public static float normalOf(int[] w) {
        double u0 = unit(w[0]);
        double u1 = unit(w[1]);
        return (float) (Math.sqrt(-2.0 * Math.log(u0)) * Math.cos(2.0 * Math.PI * u1));
    }

    public static float uniformOf(int[] w) {
        return (float) unit(w[0]);
    }
}
