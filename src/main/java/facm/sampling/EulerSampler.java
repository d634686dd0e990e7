package facm.sampling;

import facm.model.LightningDiT;
import facm.tensor.Backend;
import facm.tensor.Tensor;

/**
 * Euler (optionally Heun) integration of a flow-matching velocity from noise at t = 0 to data at t = 1
 * (facm-spec.md §7): x ← x + (t_(k+1) − t_k)·v(x, t_k). Options: classifier-free guidance v_u + w·(v_c − v_u) on all
 * channels, applied only for t in [guidanceLow, guidanceHigh]; timestep shift t ↦ s·t / (1 + (s − 1)·t); a Heun
 * correction; and the "2 − t" time input that reads the FM branch of a distilled FACM model (the grid stays in [0,1]).
 * The state update runs in float64 on the host.
 */
public final class EulerSampler {

    public record Options(int steps, float cfg, float guidanceLow, float guidanceHigh, float shift, boolean heun,
                          boolean fmBranch) {
        public Options {
            if (steps < 1) {
                throw new IllegalArgumentException("euler sampler needs at least 1 step, got " + steps);
            }
            if (shift <= 0) {
                throw new IllegalArgumentException("timestep shift must be > 0, got " + shift);
            }
            if (guidanceLow > guidanceHigh) {
                throw new IllegalArgumentException("guidance interval [" + guidanceLow + ", " + guidanceHigh + "] is empty");
            }
        }

        public static Options plain(int steps) {
            return new Options(steps, 1f, 0f, 1f, 1f, false, false);
        }
    }

    private EulerSampler() {
    }

    /** Grid time k/N after the shift. */
    static double gridTime(int k, Options o) {
        double t = (double) k / o.steps();
        return o.shift() * t / (1.0 + (o.shift() - 1.0) * t);
    }

    public static Tensor sample(LightningDiT model, Tensor z, Tensor y, Options o) {
        Backend be = z.backend();
        int b = z.dim(0);
        int nullClass = model.config().nullClass();
        double[] x = HostState.toDouble(be.download(z));
        int[] nulls = new int[b];
        java.util.Arrays.fill(nulls, nullClass);
        try (Tensor yu = be.upload("null_labels", nulls, b)) {
            for (int k = 0; k < o.steps(); k++) {
                double t = gridTime(k, o);
                double tn = gridTime(k + 1, o);
                double dt = tn - t;
                double[] v = velocity(model, x, z.shape(), t, y, yu, o);
                if (o.heun()) {
                    double[] xp = new double[x.length];
                    for (int i = 0; i < x.length; i++) {
                        xp[i] = x[i] + dt * v[i];
                    }
                    double[] v2 = velocity(model, xp, z.shape(), tn, y, yu, o);
                    for (int i = 0; i < x.length; i++) {
                        x[i] += dt * 0.5 * (v[i] + v2[i]);
                    }
                } else {
                    for (int i = 0; i < x.length; i++) {
                        x[i] += dt * v[i];
                    }
                }
            }
        }
        return be.upload("samples", HostState.toFloat(x), z.shape());
    }

    private static double[] velocity(LightningDiT model, double[] x, int[] shape, double t, Tensor y, Tensor yu,
                                     Options o) {
        double tau = o.fmBranch() ? 2.0 - t : t;
        double r = o.fmBranch() ? t : 1.0;
        int b = shape[0];
        float[] vc = HostState.evaluate(model, x, shape, tau, r, y, b);
        double[] v = new double[x.length];
        boolean guided = o.cfg() != 1f && t >= o.guidanceLow() && t <= o.guidanceHigh();
        if (!guided) {
            for (int i = 0; i < v.length; i++) {
                v[i] = vc[i];
            }
            return v;
        }
        float[] vu = HostState.evaluate(model, x, shape, tau, r, yu, b);
        for (int i = 0; i < v.length; i++) {
            v[i] = vu[i] + (double) o.cfg() * (vc[i] - vu[i]);
        }
        return v;
    }
}
