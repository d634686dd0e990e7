package facm.autograd;

import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Whole-model gradient checks used by the CPU and GPU tests: L = Σ r ⊙ F(x, τ, y [, r_aux]) for a fixed random r,
 * parameter gradients from the tape, and for any parameter tensor P the directional derivative along a random
 * direction δ (scaled like P) compared with the central difference (L(P + δ) − L(P − δ)) / 2.
 */
final class ModelGradientCheck implements AutoCloseable {
    final Backend be;
    final ModelWeights weights;
    final LightningDiT model;
    final Tensor x;
    final Tensor t;
    final Tensor y;
    final Tensor rAux;
    final float[] r;
    final Tensor rTensor;

    /** Batch of 2 (τ = 0.3 and 1.6, labels 3 and the null class); inputs and r from fixed Philox seeds. */
    ModelGradientCheck(Backend be, ModelConfig c, long weightSeed, GemmPrecision precision) {
        this.be = be;
        this.weights = ModelWeights.philox(c, be, weightSeed);
        this.model = new LightningDiT(weights).precision(precision);
        int b = 2;
        int[] shape = {b, c.inChannels(), c.inputSize(), c.inputSize()};
        x = be.empty("x", DType.F32, shape);
        be.randomNormal(x, 77, 0);
        t = be.upload("t", new float[] {0.3f, 1.6f}, b);
        y = be.upload("y", new int[] {Math.min(3, c.numClasses() - 1), c.numClasses()}, b);
        rAux = c.auxTime() ? be.upload("r", new float[] {0.3f, 0.8f}, b) : null;
        int n = b * c.inChannels() * c.inputSize() * c.inputSize();
        r = new float[n];
        for (int i = 0; i < n; i++) {
            r[i] = (float) (Philox.normal(78, i) / Math.sqrt(n));
        }
        rTensor = be.upload("r", r, shape);
    }

    /** L = Σ r ⊙ F in float64 on the host. */
    double loss() {
        try (Tensor f = model.forward(x, t, y, rAux)) {
            float[] fv = be.download(f);
            double s = 0;
            for (int i = 0; i < fv.length; i++) {
                s += (double) r[i] * fv[i];
            }
            return s;
        }
    }

    /** Accumulates ∂L/∂θ into {@code grads} through the tape. */
    void backward(Gradients grads) {
        try (Tape tape = Tape.forParameters(weights, grads);
             Tensor f = model.forward(x, t, y, rAux, tape)) {
            tape.backward(f, rTensor);
        }
    }

    record Direction(String key, double analytic, double numeric) {
        double relError() {
            return Math.abs(analytic - numeric) / Math.max(Math.abs(analytic), Math.abs(numeric));
        }
    }

    /**
     * For each trainable tensor: δ = h · rms(P) · n (n standard normal, at least 1e-2 · h per element so zero-ish
     * tensors still move), analytic Σ ∂L/∂P ⊙ δ vs numeric (L(P + δ) − L(P − δ)) / 2.
     */
    List<Direction> directions(Gradients grads, double h) {
        List<Direction> out = new ArrayList<>();
        int k = 0;
        for (ParameterTable.Entry e : weights.table().entries()) {
            if (e.kind() != ParameterTable.Kind.TRAINABLE) {
                continue;
            }
            k++;
            float[] p = be.download(weights.get(e.key()));
            float[] g = be.download(grads.get(e.key()));
            double rms = 0;
            for (float v : p) {
                rms += (double) v * v;
            }
            rms = Math.max(Math.sqrt(rms / p.length), 1e-2);
            float[] plus = new float[p.length];
            float[] minus = new float[p.length];
            double analytic = 0;
            double[] delta = new double[p.length];
            for (int i = 0; i < p.length; i++) {
                plus[i] = (float) (p[i] + h * rms * Philox.normal(1000 + k, i));
                minus[i] = (float) (p[i] - h * rms * Philox.normal(1000 + k, i));
                delta[i] = ((double) plus[i] - minus[i]) / 2; // the step actually taken after fp32 rounding
                analytic += g[i] * delta[i];
            }
            weights.set(e.key(), plus);
            double lp = loss();
            weights.set(e.key(), minus);
            double lm = loss();
            weights.set(e.key(), p);
            out.add(new Direction(e.key(), analytic, (lp - lm) / 2));
        }
        return out;
    }

    static String table(List<Direction> ds) {
        StringBuilder sb = new StringBuilder();
        for (Direction d : ds) {
            sb.append(String.format("  %-42s analytic %+.6e numeric %+.6e rel %.2e%n", d.key(), d.analytic(),
                    d.numeric(), d.relError()));
        }
        return sb.toString();
    }

    /** Per-key gradient values of two gradient sets: max |a − b| / max |b| over each tensor. */
    static Map<String, Double> compare(Backend beA, Gradients a, Backend beB, Gradients b) {
        Map<String, Double> m = new java.util.LinkedHashMap<>();
        for (String key : b.asMap().keySet()) {
            float[] va = beA.download(a.get(key));
            float[] vb = beB.download(b.get(key));
            double err = 0;
            double scale = 0;
            for (int i = 0; i < vb.length; i++) {
                err = Math.max(err, Float.isFinite(va[i]) ? Math.abs(va[i] - vb[i]) : Double.POSITIVE_INFINITY);
                scale = Math.max(scale, Math.abs(vb[i]));
            }
            m.put(key, scale == 0 ? err : err / scale);
        }
        return m;
    }

    @Override
    public void close() {
        x.close();
        t.close();
        y.close();
        if (rAux != null) {
            rAux.close();
        }
        rTensor.close();
        weights.close();
    }
}
