package facm.sampling;

import java.util.stream.IntStream;

/**
 * Float64 sampler state on the host (§7: "float64 state update") and its f32 rounding. At XL/1 batch 256 the state is
 * 2.1 M values, and each pass over it costs milliseconds on one core while the GPU waits, so the passes run in fixed
 * chunks on the common fork-join pool: the work is elementwise, so any split gives the same values.
 */
final class HostState {
    /** Elements per chunk of a parallel pass; smaller states run on the calling thread. */
    private static final int CHUNK = 1 << 16;

    /** The body of an elementwise pass over [from, to). */
    interface Range {
        void run(int from, int to);
    }

    private HostState() {
    }

    /** {@code body} over [0, n) in chunks of {@link #CHUNK}, in parallel when there is more than one chunk. */
    static void forEachChunk(int n, Range body) {
        int chunks = (n + CHUNK - 1) / CHUNK;
        if (chunks <= 1) {
            body.run(0, n);
            return;
        }
        IntStream.range(0, chunks).parallel().forEach(c -> body.run(c * CHUNK, Math.min(n, (c + 1) * CHUNK)));
    }

    static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        forEachChunk(f.length, (from, to) -> {
            for (int i = from; i < to; i++) {
                d[i] = f[i];
            }
        });
        return d;
    }

    static float[] toFloat(double[] d) {
        float[] f = new float[d.length];
        forEachChunk(d.length, (from, to) -> {
            for (int i = from; i < to; i++) {
                f[i] = (float) d[i];
            }
        });
        return f;
    }

    static float[] filled(int n, float v) {
        float[] o = new float[n];
        java.util.Arrays.fill(o, v);
        return o;
    }
}
