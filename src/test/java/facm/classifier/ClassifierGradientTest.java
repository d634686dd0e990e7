package facm.classifier;

import facm.autograd.Tape;
import facm.backend.cpu.CpuBackend;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The classifier's parameter gradients (tape through every layer, the token mean's own backward, and the
 * cross-entropy op's gradient as the seed) against central differences of the fp32 forward: for each tensor P, the
 * directional derivative Σ ∂L/∂P ⊙ δ along a random δ = h·rms(P)·n versus (L(P + δ) − L(P − δ))/2, L = the batch-mean
 * cross-entropy computed in float64 on the host from the fp32 logits. The fp32 forward limits the numeric side to
 * about 1e-7·|L|/h, so the tolerance is 2e-2 relative or 2e-6 absolute (as LightningDiTGradientTest); a wrong
 * backward gives errors of order one. Every tensor has random values (the head is not left at its zero
 * initialization, which would hide every gradient below it).
 */
class ClassifierGradientTest {
    private static final double H = 1e-2;
    private static final double REL_TOL = 2e-2;
    private static final double ABS_TOL = 2e-6;

    @Test
    void tinyClassifierGradientsMatchCentralDifferences() {
        // 8×8 images, patch 2 → 16 tokens of 4 values, width 8, two blocks, 2 heads (dh 4), SwiGLU 12, 3 classes.
        check(new ClassifierConfig(1, 8, 2, 8, 2, 2, 12, 3), 5);
    }

    @Test
    void twoChannelsOneBlockAndManyClasses() {
        check(new ClassifierConfig(2, 4, 2, 12, 1, 3, 8, 7), 3);
    }

    private static void check(ClassifierConfig c, int batch) {
        try (CpuBackend be = new CpuBackend(2);
             Classifier model = Classifier.initialize(c, be, 11)) {
            randomize(model.weights());
            float[] images = new float[batch * c.channels() * c.imageSize() * c.imageSize()];
            for (int i = 0; i < images.length; i++) {
                images[i] = Philox.uniform(21, i) * 2 - 1;
            }
            int[] labels = new int[batch];
            for (int i = 0; i < batch; i++) {
                labels[i] = (3 * i + 1) % c.numClasses();
            }
            Map<String, float[]> grads = gradients(be, model, images, labels, batch);
            StringBuilder table = new StringBuilder();
            boolean ok = true;
            int k = 0;
            for (Map.Entry<String, float[]> e : grads.entrySet()) {
                String key = e.getKey();
                float[] p = be.download(model.weights().get(key));
                double rms = 0;
                for (float v : p) {
                    rms += (double) v * v;
                }
                rms = Math.max(Math.sqrt(rms / p.length), 1e-2);
                float[] plus = new float[p.length];
                float[] minus = new float[p.length];
                double analytic = 0;
                for (int i = 0; i < p.length; i++) {
                    double step = H * rms * Philox.normal(1000 + k, i);
                    plus[i] = (float) (p[i] + step);
                    minus[i] = (float) (p[i] - step);
                    analytic += e.getValue()[i] * (((double) plus[i] - minus[i]) / 2); // the step taken in fp32
                }
                k++;
                model.weights().set(key, plus);
                double lp = loss(be, model, images, labels, batch);
                model.weights().set(key, minus);
                double lm = loss(be, model, images, labels, batch);
                model.weights().set(key, p);
                double numeric = (lp - lm) / 2;
                double diff = Math.abs(analytic - numeric);
                boolean good = diff <= REL_TOL * Math.abs(numeric) || diff <= ABS_TOL;
                ok &= good;
                table.append(String.format("  %-24s analytic %+.6e numeric %+.6e%s%n", key, analytic, numeric,
                        good ? "" : "  <-- off"));
            }
            System.out.println("[ClassifierGradientTest] " + c.summary() + ", h = " + H + ":\n" + table);
            assertTrue(ok, "classifier gradients differ from central differences:\n" + table);
        }
    }

    /** Every tensor from a Philox normal: norm weights around 1, the rest N(0, 1/fan_in)-sized (biases 0.1). */
    static void randomize(ClassifierWeights w) {
        int k = 0;
        for (Map.Entry<String, Tensor> e : w.asMap().entrySet()) {
            int[] shape = e.getValue().shape();
            float[] v = new float[(int) e.getValue().numel()];
            double scale = shape.length == 2 ? 1.0 / Math.sqrt(shape[1]) : 0.1;
            boolean norm = e.getKey().contains("norm");
            for (int i = 0; i < v.length; i++) {
                double n = Philox.normal(500 + k, i);
                v[i] = (float) (norm ? 1 + 0.2 * n : scale * n);
            }
            k++;
            w.set(e.getKey(), v);
        }
    }

    /** Mean cross-entropy of the fp32 logits, in float64 on the host. */
    private static double loss(Backend be, Classifier model, float[] images, int[] labels, int batch) {
        ClassifierConfig c = model.config();
        try (Tensor x = be.upload("x", images, batch, c.channels(), c.imageSize(), c.imageSize());
             Tensor z = model.logits(x)) {
            float[] logits = be.download(z);
            int k = c.numClasses();
            double sum = 0;
            for (int b = 0; b < batch; b++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int i = 0; i < k; i++) {
                    max = Math.max(max, logits[b * k + i]);
                }
                double s = 0;
                for (int i = 0; i < k; i++) {
                    s += Math.exp(logits[b * k + i] - max);
                }
                sum += max + Math.log(s) - logits[b * k + labels[b]];
            }
            return sum / batch;
        }
    }

    /** ∂(mean cross-entropy)/∂θ through the tape, seeded by the softmaxCrossEntropy op's gradient. */
    private static Map<String, float[]> gradients(Backend be, Classifier model, float[] images, int[] labels,
                                                  int batch) {
        ClassifierConfig c = model.config();
        Map<String, float[]> out = new LinkedHashMap<>();
        try (ClassifierOptimizer opt = new ClassifierOptimizer(model.weights(), 0f);
             Tensor x = be.upload("x", images, batch, c.channels(), c.imageSize(), c.imageSize());
             Tensor y = be.upload("y", labels, batch);
             Tensor perSample = be.empty(DType.F32, batch);
             Tensor gradLogits = be.empty(DType.F32, batch, c.numClasses());
             Tape tape = opt.newTape();
             Tensor z = model.logits(x, tape)) {
            be.training().softmaxCrossEntropy(z, y, perSample, gradLogits, 1f / batch);
            tape.backward(z, gradLogits);
            for (String key : model.weights().asMap().keySet()) {
                out.put(key, be.download(opt.gradient(key)));
            }
        }
        return out;
    }
}
