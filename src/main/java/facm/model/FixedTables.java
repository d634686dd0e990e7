package facm.model;

/**
 * The fixed tables of a LightningDiT, computed in float64 and rounded to float: the absolute sin-cos position table
 * {@code pos_embed} (facm-spec.md §3.2 step 2) and the interleaved 2-D RoPE tables (§3.4).
 */
public final class FixedTables {
    private FixedTables() {
    }

    /**
     * pos_embed {@code [T, D]}: token n = g·i + j gets [E(j) ‖ E(i)], E(p) = [sin(p·ω_k) for k, cos(p·ω_k) for k],
     * ω_k = 10000^(−k/(D/4)), k = 0..D/4−1. The first half encodes the column j, the second the row i.
     */
    public static float[] positionTable(int grid, int hidden) {
        if (hidden % 4 != 0) {
            throw new IllegalArgumentException("pos_embed needs hidden divisible by 4, got " + hidden);
        }
        int quarter = hidden / 4;
        int half = hidden / 2;
        float[] p = new float[grid * grid * hidden];
        for (int i = 0; i < grid; i++) {
            for (int j = 0; j < grid; j++) {
                int base = (i * grid + j) * hidden;
                for (int k = 0; k < quarter; k++) {
                    double omega = Math.pow(10000.0, -(double) k / quarter);
                    p[base + k] = (float) Math.sin(j * omega);
                    p[base + quarter + k] = (float) Math.cos(j * omega);
                    p[base + half + k] = (float) Math.sin(i * omega);
                    p[base + half + quarter + k] = (float) Math.cos(i * omega);
                }
            }
        }
        return p;
    }

    /**
     * RoPE cos (or sin) table {@code [T, dh]}: channel pair p of token n = g·i + j rotates by θ = i·φ_p for
     * p &lt; dh/4 and θ = j·φ_(p−dh/4) otherwise, φ_m = 10000^(−m/(dh/4)); both channels of a pair hold the same value.
     */
    public static float[] ropeTable(int grid, int headDim, boolean sin) {
        int pairs = headDim / 2;
        int perAxis = headDim / 4;
        float[] t = new float[grid * grid * headDim];
        for (int i = 0; i < grid; i++) {
            for (int j = 0; j < grid; j++) {
                int base = (i * grid + j) * headDim;
                for (int p = 0; p < pairs; p++) {
                    int m = p < perAxis ? p : p - perAxis;
                    double phi = Math.pow(10000.0, -(double) m / perAxis);
                    double theta = (p < perAxis ? i : j) * phi;
                    float v = (float) (sin ? Math.sin(theta) : Math.cos(theta));
                    t[base + 2 * p] = v;
                    t[base + 2 * p + 1] = v;
                }
            }
        }
        return t;
    }

    /** The values of a FIXED entry of the parameter table. */
    public static float[] valuesOf(ModelConfig c, String key) {
        return switch (key) {
            case "pos_embed" -> positionTable(c.gridSize(), c.hidden());
            case "feat_rope.freqs_cos" -> ropeTable(c.gridSize(), c.headDim(), false);
            case "feat_rope.freqs_sin" -> ropeTable(c.gridSize(), c.headDim(), true);
            default -> throw new IllegalArgumentException("'" + key + "' is not a fixed table");
        };
    }
}
