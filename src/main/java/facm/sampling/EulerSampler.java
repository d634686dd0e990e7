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
 *
 * <p>An instance keeps its evaluator between calls: on the CUDA backend each network evaluation replays a CUDA graph
 * captured per batch shape on first use ({@link GraphedForward}; off with {@code -Dfacm.cudaGraphs=false} or the
 * constructor flag): one upload of the state, one graph launch and one download. Hold one sampler for a run of many
 * batches and close it at the end. The static method evaluates eagerly.
 */
public final class EulerSampler implements AutoCloseable {

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

    private final LightningDiT model;
    private final ForwardEvaluator forward;

    /** A sampler of {@code model}, with CUDA graphs when {@link GraphedForward#enabledFor} says so. */
    public EulerSampler(LightningDiT model) {
        this(model, GraphedForward.enabledFor(model));
    }

    /** A sampler of {@code model}; {@code cudaGraphs} has no effect on the CPU backend. */
    public EulerSampler(LightningDiT model, boolean cudaGraphs) {
        this.model = model;
        this.forward = GraphedForward.evaluatorFor(model, cudaGraphs);
    }

    public boolean usesCudaGraphs() {
        return forward.usesCudaGraphs();
    }

    @Override
    public void close() {
        forward.close();
    }

    /** Grid time k/N after the shift. */
    static double gridTime(int k, Options o) {
        double t = (double) k / o.steps();
        return o.shift() * t / (1.0 + (o.shift() - 1.0) * t);
    }

    public static Tensor sample(LightningDiT model, Tensor z, Tensor y, Options o) {
        try (EulerSampler s = new EulerSampler(model, false)) {
            return s.sample(z, y, o);
        }
    }

    public Tensor sample(Tensor z, Tensor y, Options o) {
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
                double[] v = velocity(x, z.shape(), t, y, yu, o);
                if (o.heun()) {
                    double[] xp = new double[x.length];
                    for (int i = 0; i < x.length; i++) {
                        xp[i] = x[i] + dt * v[i];
                    }
                    double[] v2 = velocity(xp, z.shape(), tn, y, yu, o);
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

    private double[] velocity(double[] x, int[] shape, double t, Tensor y, Tensor yu, Options o) {
        double tau = o.fmBranch() ? 2.0 - t : t;
        double r = o.fmBranch() ? t : 1.0;
        float[] vc = forward.evaluate(x, shape, tau, r, y);
        double[] v = new double[x.length];
        boolean guided = o.cfg() != 1f && t >= o.guidanceLow() && t <= o.guidanceHigh();
        if (!guided) {
            for (int i = 0; i < v.length; i++) {
                v[i] = vc[i];
            }
            return v;
        }
        float[] vu = forward.evaluate(x, shape, tau, r, yu);
        for (int i = 0; i < v.length; i++) {
            v[i] = vu[i] + (double) o.cfg() * (vc[i] - vu[i]);
        }
        return v;
    }
}
