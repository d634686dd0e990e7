package facm.sampling;

import facm.model.LightningDiT;
import facm.tensor.Backend;
import facm.tensor.Tensor;

/** Float64 sampler state on the host, and one network evaluation on it (§7: "float64 state update"). */
final class HostState {
    private HostState() {
    }

    static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    static float[] toFloat(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) {
            f[i] = (float) d[i];
        }
        return f;
    }

    /**
     * F(x, τ, y) for the whole batch at one time τ. {@code r} is the auxiliary time input, used only by models with the
     * auxiliary time embedder (§3.7: r = 1 for the CM task, r = t for the FM task).
     */
    static float[] evaluate(LightningDiT model, double[] x, int[] shape, double tau, double r, Tensor y, int b) {
        Backend be = y.backend();
        float[] taus = new float[b];
        java.util.Arrays.fill(taus, (float) tau);
        try (Tensor xt = be.upload("x_t", toFloat(x), shape);
             Tensor tt = be.upload("tau", taus, b);
             Tensor rt = model.config().auxTime() ? be.upload("r", filled(b, (float) r), b) : null;
             Tensor f = model.forward(xt, tt, y, rt)) {
            return be.download(f);
        }
    }

    private static float[] filled(int b, float v) {
        float[] o = new float[b];
        java.util.Arrays.fill(o, v);
        return o;
    }
}
