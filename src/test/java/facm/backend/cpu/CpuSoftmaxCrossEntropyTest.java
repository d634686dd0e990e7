package facm.backend.cpu;

import static facm.backend.cpu.FiniteDifferences.check;
import static facm.backend.cpu.FiniteDifferences.checkForward;
import static facm.backend.cpu.FiniteDifferences.coordinates;
import static facm.backend.cpu.FiniteDifferences.gradient;
import static facm.backend.cpu.FiniteDifferences.toDouble;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.uniform;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.Arrays;
import java.util.SplittableRandom;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * {@link CpuTrainingOps#softmaxCrossEntropy}: the per-row loss against a float64 version written the textbook way
 * (−ln of the softmax probability of the label, with the probabilities normalized by their plain sum), the gradient
 * against central finite differences of that version and against gradScale·(softmax − onehot), large logits that
 * overflow a naive exp, and the argument errors.
 */
class CpuSoftmaxCrossEntropyTest {
    private static final CpuBackend CPU = new CpuBackend(2);
    private static final TrainingOps OPS = CPU.training();

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    /** ℓ_b = −ln(exp(z_{b,y}) / Σ_k exp(z_bk)) in float64 (fine for the moderate logits used with it). */
    private static double[] crossEntropy64(double[] z, int[] labels, int k) {
        double[] loss = new double[labels.length];
        for (int b = 0; b < labels.length; b++) {
            double sum = 0;
            for (int i = 0; i < k; i++) {
                sum += Math.exp(z[b * k + i]);
            }
            loss[b] = -Math.log(Math.exp(z[b * k + labels[b]]) / sum);
        }
        return loss;
    }

    private record Result(float[] perSample, float[] gradLogits) {
    }

    private static Result run(float[] logits, int[] labels, int b, int k, float gradScale, boolean withGrad) {
        try (Tensor z = CPU.upload("logits", logits, b, k);
             Tensor y = CPU.upload("labels", labels, b);
             Tensor loss = CPU.upload("perSample", nans(b), b);
             Tensor grad = CPU.upload("gradLogits", nans(b * k), b, k)) {
            OPS.softmaxCrossEntropy(z, y, loss, withGrad ? grad : null, gradScale);
            return new Result(CPU.download(loss), CPU.download(grad));
        }
    }

    private static int[] labels(long seed, int b, int k) {
        return new SplittableRandom(seed).ints(b, 0, k).toArray();
    }

    @Test
    void lossAndGradientMatchFloat64AndFiniteDifferences() {
        int[][] shapes = {{3, 10}, {1, 1}, {5, 37}, {2, 1000}};
        long seed = 1200;
        for (int[] shape : shapes) {
            int b = shape[0], k = shape[1];
            String name = "softmaxCrossEntropy B" + b + " K" + k;
            float[] logits = uniform(seed++, b * k, -4, 4);
            int[] ys = labels(seed++, b, k);
            float gradScale = 1f / b;
            Result got = run(logits, ys, b, k, gradScale, true);
            double[][] in = {toDouble(logits)};
            FiniteDifferences.Forward f = x -> crossEntropy64(x[0], ys, k);
            checkForward(name, f.apply(in), got.perSample());
            double[] weights = new double[b];
            Arrays.fill(weights, gradScale);
            int[] coords = coordinates(b * k, 400, seed);
            check(name + " gradLogits", gradient(f, in, 0, weights, coords), got.gradLogits(), coords);
            // The closed form, element by element: gradScale·(p − [k = y]) within 2 ulp (+ a floor for p ≈ 0).
            for (int row = 0; row < b; row++) {
                double sum = 0;
                for (int i = 0; i < k; i++) {
                    sum += Math.exp(logits[row * k + i]);
                }
                for (int i = 0; i < k; i++) {
                    double p = Math.exp(logits[row * k + i]) / sum;
                    double expected = gradScale * (i == ys[row] ? p - 1 : p);
                    float actual = got.gradLogits()[row * k + i];
                    assertTrue(Math.abs(actual - expected) <= 2 * Math.ulp((float) expected) + 1e-12,
                            name + ": gradLogits[" + row + "," + i + "] " + actual + " vs " + expected);
                }
            }
            Result lossOnly = run(logits, ys, b, k, gradScale, false);
            assertTrue(Arrays.equals(got.perSample(), lossOnly.perSample()), name + ": the loss without gradient");
            assertTrue(Arrays.stream(toDouble(lossOnly.gradLogits())).allMatch(Double::isNaN),
                    name + ": a null gradLogits must leave the buffer alone");
        }
    }

    @Test
    void largeLogitsStayFinite() {
        // exp(200) overflows fp32 and exp(1000) float64: the max shift must keep the loss and gradient exact.
        float[] logits = {1000f, 990f, 0f, -1000f, 200f, 201f};
        int[] ys = {1, 0};
        Result got = run(logits, ys, 2, 3, 1f, true);
        double lse0 = 1000 + Math.log(1 + Math.exp(-10) + Math.exp(-1000));
        double lse1 = 201 + Math.log(Math.exp(-1201) + Math.exp(-1) + 1);
        assertEquals(lse0 - 990, got.perSample()[0], Math.ulp(10f));
        assertEquals(lse1 + 1000, got.perSample()[1], Math.ulp(1201f));
        assertEquals(Math.exp(990 - lse0) - 1, got.gradLogits()[1], 1e-7);
        assertEquals(1 - Math.exp(990 - lse0), got.gradLogits()[0], 1e-7);
        assertEquals(Math.exp(-1000 - lse1) - 1, got.gradLogits()[3], 1e-7);
        for (float g : got.gradLogits()) {
            assertTrue(Float.isFinite(g), "gradient " + Arrays.toString(got.gradLogits()));
        }
        // Rows of the gradient sum to zero (softmax sums to one).
        assertEquals(0.0, got.gradLogits()[0] + got.gradLogits()[1] + got.gradLogits()[2], 1e-6);
    }

    @Test
    void badArgumentsAreOneLineErrors() {
        try (Tensor z = CPU.upload("logits", uniform(1300, 6, -1, 1), 2, 3);
             Tensor y = CPU.upload("labels", new int[] {0, 3}, 2);
             Tensor yNegative = CPU.upload("labels", new int[] {-1, 0}, 2);
             Tensor yValid = CPU.upload("labels", new int[] {2, 0}, 2);
             Tensor yFloat = CPU.upload("labels", new float[] {0, 1}, 2);
             Tensor loss = CPU.upload("perSample", nans(2), 2);
             Tensor wrongLoss = CPU.upload("perSample", nans(3), 3);
             Tensor zOneRank = CPU.upload("flat", uniform(1301, 6, -1, 1), 6)) {
            var tooLarge = assertThrows(IllegalArgumentException.class,
                    () -> OPS.softmaxCrossEntropy(z, y, loss, null, 1f));
            assertEquals("softmaxCrossEntropy: label 3 of row 1 is outside [0, 3) for logits logits f32[2,3] cpu",
                    tooLarge.getMessage());
            assertTrue(Float.isNaN(CPU.download(loss)[0]), "nothing is written before the labels are checked");
            assertThrows(IllegalArgumentException.class, () -> OPS.softmaxCrossEntropy(z, yNegative, loss, null, 1f));
            assertThrows(ShapeException.class, () -> OPS.softmaxCrossEntropy(z, yFloat, loss, null, 1f));
            assertThrows(ShapeException.class, () -> OPS.softmaxCrossEntropy(z, yValid, wrongLoss, null, 1f));
            assertThrows(ShapeException.class, () -> OPS.softmaxCrossEntropy(zOneRank, yValid, loss, null, 1f));
            assertThrows(ShapeException.class, () -> OPS.softmaxCrossEntropy(z, yValid, loss, z, 1f));
            try (Tensor grad = CPU.empty(DType.F32, 2, 3)) {
                assertThrows(IllegalArgumentException.class,
                        () -> OPS.softmaxCrossEntropy(z, yValid, loss, grad, Float.NaN));
            }
        }
    }
}
