package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole-model forward-mode pass (LightningDiT.jvp on a DualPass) on the CPU backend: the primal equals the plain
 * forward bit for bit (without and with a tape), the tangent equals Richardson-extrapolated central differences of
 * the fp32 forward along (ẋ, τ̇), along ẋ only and along τ̇ only, and the tape of a JVP pass gives the same parameter
 * gradients as the tape of a plain forward.
 *
 * <p>Tolerance of the finite-difference check: D(h) = (F(x+hẋ, τ+hτ̇) − F(x−hẋ, τ−hτ̇)) / 2h has truncation error
 * O(h²); R = (4·D(h/2) − D(h)) / 3 cancels it, leaving O(h⁴) ≈ 1e-8 at h = 1e-2. What is left is fp32 rounding of F
 * (~1e-7·|F| per element, divided by h/2 and amplified ×5/3 by the extrapolation: ~3e-5 relative) and the rounding
 * of the perturbed inputs (~6e-8/h relative). So ‖R − Ḟ‖/‖Ḟ‖ ≤ 1e-3 is a safe bound, while a wrong tangent rule in
 * any layer gives errors of order 1e-1 and more.
 */
class LightningDiTJvpTest {
    static final int BATCH = 3;
    private static final double H = 1e-2;
    private static final double FD_REL_TOL = 1e-3;

    /** Inputs of one check, from fixed Philox seeds (identical on every backend). */
    record Inputs(Tensor x, Tensor xDot, Tensor t, Tensor tDot, Tensor y, Tensor r) implements AutoCloseable {
        static Inputs create(Backend be, ModelConfig c) {
            int[] shape = {BATCH, c.inChannels(), c.inputSize(), c.inputSize()};
            int n = BATCH * c.inChannels() * c.inputSize() * c.inputSize();
            Tensor x = be.upload("x", normals(81, n, 1), shape);
            Tensor xDot = be.upload("xDot", normals(82, n, 1), shape);
            Tensor t = be.upload("t", new float[] {0.15f, 0.6f, 1.7f}, BATCH);
            Tensor tDot = be.upload("tDot", new float[] {1f, 1f, -0.5f}, BATCH);
            Tensor y = be.upload("y", new int[] {1, c.numClasses() - 1, c.numClasses()}, BATCH);
            Tensor r = c.auxTime() ? be.upload("r", new float[] {0.3f, 0.8f, 1f}, BATCH) : null;
            return new Inputs(x, xDot, t, tDot, y, r);
        }

        @Override
        public void close() {
            for (Tensor z : new Tensor[] {x, xDot, t, tDot, y, r}) {
                if (z != null) {
                    z.close();
                }
            }
        }
    }

    static float[] normals(long seed, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (scale * Philox.normal(seed, i));
        }
        return v;
    }

    /** Primal and tangent downloaded; the Dual's tensors are closed. */
    static float[][] jvpValues(Backend be, LightningDiT model, Inputs in, boolean withX, boolean withT, Tape tape) {
        Dual d = model.jvp(in.x(), withX ? in.xDot() : null, in.t(), withT ? in.tDot() : null, in.y(), in.r(), tape);
        try (Tensor p = d.primal(); Tensor tg = d.tangent()) {
            return new float[][] {be.download(p), be.download(tg)};
        }
    }

    private static float[] forwardAt(Backend be, LightningDiT model, Inputs in, double s, boolean withX,
                                     boolean withT) {
        float[] x = be.download(in.x());
        float[] xd = be.download(in.xDot());
        float[] t = be.download(in.t());
        float[] td = be.download(in.tDot());
        for (int i = 0; withX && i < x.length; i++) {
            x[i] = (float) (x[i] + s * xd[i]);
        }
        for (int i = 0; withT && i < t.length; i++) {
            t[i] = (float) (t[i] + s * td[i]);
        }
        try (Tensor xs = be.upload("x+s", x, in.x().shape()); Tensor ts = be.upload("t+s", t, BATCH);
             Tensor f = model.forward(xs, ts, in.y(), in.r())) {
            return be.download(f);
        }
    }

    private static double[] centralDifference(Backend be, LightningDiT model, Inputs in, double h, boolean withX,
                                              boolean withT) {
        float[] plus = forwardAt(be, model, in, h, withX, withT);
        float[] minus = forwardAt(be, model, in, -h, withX, withT);
        double[] d = new double[plus.length];
        for (int i = 0; i < d.length; i++) {
            d[i] = ((double) plus[i] - minus[i]) / (2 * h);
        }
        return d;
    }

    /** ‖a − b‖₂ / ‖b‖₂. */
    static double relL2(float[] a, double[] b) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < b.length; i++) {
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }

    @Test
    void primalEqualsThePlainForwardExactly() {
        ModelConfig c = Presets.get("tiny");
        try (CpuBackend be = new CpuBackend(2); ModelWeights w = ModelWeights.philox(c, be, 1234);
             Inputs in = Inputs.create(be, c)) {
            LightningDiT model = new LightningDiT(w);
            float[] plain;
            try (Tensor f = model.forward(in.x(), in.t(), in.y(), in.r())) {
                plain = be.download(f);
            }
            assertArrayEquals(plain, jvpValues(be, model, in, true, true, null)[0], 0f, "fused JVP primal");
            try (Gradients g = new Gradients(w); Tape tape = Tape.forParameters(w, g)) {
                assertArrayEquals(plain, jvpValues(be, model, in, true, true, tape)[0], 0f, "recording JVP primal");
            }
        }
    }

    @Test
    void tangentMatchesRichardsonCentralDifferences() {
        checkTangents(Presets.get("tiny"), "tiny");
    }

    @Test
    void tangentOfTheAuxiliaryTimeVariantWithoutQkNormMatchesCentralDifferences() {
        checkTangents(new ModelConfig("micro-aux", 2, 32, 2, 2, 8, 2, 5, false, true, true), "aux time, no qk-norm");
    }

    private static void checkTangents(ModelConfig c, String what) {
        try (CpuBackend be = new CpuBackend(2); ModelWeights w = ModelWeights.philox(c, be, 1234);
             Inputs in = Inputs.create(be, c)) {
            LightningDiT model = new LightningDiT(w);
            float[][] sum = null;
            for (boolean[] dir : new boolean[][] {{true, true}, {true, false}, {false, true}}) {
                boolean withX = dir[0];
                boolean withT = dir[1];
                float[] tangent = jvpValues(be, model, in, withX, withT, null)[1];
                double[] dh = centralDifference(be, model, in, H, withX, withT);
                double[] dh2 = centralDifference(be, model, in, H / 2, withX, withT);
                double[] rich = new double[dh.length];
                for (int i = 0; i < rich.length; i++) {
                    rich[i] = (4 * dh2[i] - dh[i]) / 3;
                }
                double err = relL2(tangent, rich);
                String label = what + " along " + (withX ? "ẋ" : "") + (withX && withT ? "," : "") + (withT ? "τ̇" : "");
                System.out.printf("[LightningDiTJvpTest] %s: ‖Ḟ − FD(h)‖/‖FD‖ %.2e, ‖Ḟ − Richardson‖/‖R‖ %.2e%n",
                        label, relL2(tangent, dh), err);
                assertTrue(err <= FD_REL_TOL, label + ": tangent vs Richardson central difference " + err);
                if (sum == null) {
                    sum = new float[][] {tangent, new float[tangent.length]};
                } else {
                    for (int i = 0; i < tangent.length; i++) {
                        sum[1][i] += tangent[i];
                    }
                }
            }
            // linearity: Ḟ(ẋ, τ̇) = Ḟ(ẋ, 0) + Ḟ(0, τ̇) up to fp32 rounding
            double[] parts = new double[sum[1].length];
            for (int i = 0; i < parts.length; i++) {
                parts[i] = sum[1][i];
            }
            assertTrue(relL2(sum[0], parts) <= 1e-5, what + ": tangent is not linear in (ẋ, τ̇)");
        }
    }

    @Test
    void tapeOfTheJvpPrimalGivesThePlainForwardGradients() {
        ModelConfig c = Presets.get("tiny");
        try (CpuBackend be = new CpuBackend(2); ModelWeights w = ModelWeights.philox(c, be, 1234);
             Inputs in = Inputs.create(be, c);
             Tensor r = be.upload("r", normals(83, (int) in.x().numel(), 0.1), in.x().shape());
             Gradients plain = new Gradients(w); Gradients viaJvp = new Gradients(w)) {
            LightningDiT model = new LightningDiT(w);
            try (Tape tape = Tape.forParameters(w, plain);
                 Tensor f = model.forward(in.x(), in.t(), in.y(), in.r(), tape)) {
                tape.backward(f, r);
            }
            try (Tape tape = Tape.forParameters(w, viaJvp)) {
                Dual d = model.jvp(in.x(), in.xDot(), in.t(), in.tDot(), in.y(), in.r(), tape);
                try (Tensor p = d.primal(); Tensor tg = d.tangent()) {
                    tape.backward(p, r);
                }
            }
            Map<String, Double> errs = ModelGradientCheck.compare(be, viaJvp, be, plain);
            errs.forEach((k, e) -> assertTrue(e <= 1e-6, "gradient of " + k + " via the JVP pass differs by " + e));
            assertTrue(!errs.isEmpty());
        }
    }
}
