package facm.backend.cpu;

import static facm.backend.cpu.FiniteDifferences.assertBitIdentical;
import static facm.backend.cpu.FiniteDifferences.check;
import static facm.backend.cpu.FiniteDifferences.checkForward;
import static facm.backend.cpu.FiniteDifferences.coordinates;
import static facm.backend.cpu.FiniteDifferences.gradient;
import static facm.backend.cpu.FiniteDifferences.toDouble;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.nonZero;
import static facm.backend.cpu.ReferenceData.numel;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * {@link CpuTrainingOps}: the flow-matching loss against a float64 version written like PyTorch's (channels divided by
 * their clamped norms, then dotted) and its gradient against central finite differences (including the clamped
 * cosine at an all-zero pixel); the sum of squares against float64; AdamW over three steps against a float64 hand
 * computation in PyTorch's form (multiplicative decay, lerp for m, √v/√(1−β2^t) + eps).
 */
class CpuTrainingOpsTest {
    private static final CpuBackend CPU = new CpuBackend(3);
    private static final TrainingOps OPS = CPU.training();

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    // ---------------------------------------------------------------- flow-matching loss

    /** ℓ_b = mean_CHW (p − u)² + mean_HW (1 − Σ_c (p_c / max(‖p‖, 1e-8))·(u_c / max(‖u‖, 1e-8))). */
    private static double[] fmLoss64(double[] p, double[] u, int[] shape) {
        int b = shape[0], c = shape[1], plane = shape[2] * shape[3];
        double[] loss = new double[b];
        for (int s = 0; s < b; s++) {
            double mse = 0, cosine = 0;
            for (int i = 0; i < c * plane; i++) {
                double diff = p[s * c * plane + i] - u[s * c * plane + i];
                mse += diff * diff / (c * plane);
            }
            for (int px = 0; px < plane; px++) {
                double normP = 0, normU = 0, cos = 0;
                for (int ch = 0; ch < c; ch++) {
                    normP = Math.hypot(normP, p[(s * c + ch) * plane + px]);
                    normU = Math.hypot(normU, u[(s * c + ch) * plane + px]);
                }
                for (int ch = 0; ch < c; ch++) {
                    int i = (s * c + ch) * plane + px;
                    cos += p[i] / Math.max(normP, 1e-8) * (u[i] / Math.max(normU, 1e-8));
                }
                cosine += (1 - cos) / plane;
            }
            loss[s] = mse + cosine;
        }
        return loss;
    }

    private record FmResult(float[] perSample, float[] gradPred) {
    }

    private static FmResult runFm(float[] pred, float[] target, int[] shape, float gradScale) {
        Tensor loss = CPU.upload("perSample", nans(shape[0]), shape[0]);
        Tensor grad = CPU.upload("gradPred", nans(numel(shape)), shape);
        OPS.flowMatchingLoss(CPU.upload("pred", pred, shape), CPU.upload("target", target, shape), loss, grad,
                gradScale);
        return new FmResult(CPU.download(loss), CPU.download(grad));
    }

    @Test
    void flowMatchingLossAndGradientMatchFloat64AndFiniteDifferences() {
        int[][] shapes = {{2, 3, 4, 5}, {1, 4, 1, 1}, {3, 2, 3, 3}};
        float gradScale = 0.37f;
        long seed = 800;
        for (int[] shape : shapes) {
            String name = "flowMatchingLoss " + Arrays.toString(shape);
            float[] pred = nonZero(seed++, numel(shape)), target = nonZero(seed++, numel(shape));
            FmResult got = runFm(pred, target, shape, gradScale);
            double[][] in = {toDouble(pred), toDouble(target)};
            FiniteDifferences.Forward f = x -> fmLoss64(x[0], x[1], shape);
            checkForward(name, f.apply(in), got.perSample());
            double[] weights = new double[shape[0]];
            Arrays.fill(weights, gradScale);
            check(name + " gradPred", gradient(f, in, 0, weights, coordinates(pred.length, pred.length, 0)),
                    got.gradPred());
        }
    }

    @Test
    void cosineClampAtAnAllZeroPixel() {
        int[] shape = {2, 3, 4, 5};
        int c = shape[1], plane = shape[2] * shape[3];
        float gradScale = 0.5f;
        float[] pred = nonZero(900, numel(shape)), target = nonZero(901, numel(shape));
        int zeroPixel = plane + 2 * shape[3] + 3; // sample 1, pixel (2, 3): every channel of pred is 0
        int[] zeroCoords = new int[c];
        for (int ch = 0; ch < c; ch++) {
            zeroCoords[ch] = (c + ch) * plane + 2 * shape[3] + 3;
            pred[zeroCoords[ch]] = 0f;
            target[ch * plane + 7] = 0f; // sample 0, pixel 7: the target is 0 (cos = 0, no cosine gradient)
        }
        FmResult got = runFm(pred, target, shape, gradScale);
        double[][] in = {toDouble(pred), toDouble(target)};
        FiniteDifferences.Forward f = x -> fmLoss64(x[0], x[1], shape);
        checkForward("flowMatchingLoss with zero pixels", f.apply(in), got.perSample());

        double[] weights = {gradScale, gradScale};
        int[] others = Arrays.stream(coordinates(pred.length, pred.length, 0))
                .filter(i -> Arrays.stream(zeroCoords).noneMatch(z -> z == i)).toArray();
        check("flowMatchingLoss gradPred away from the zero pixel", gradient(f, in, 0, weights, others),
                got.gradPred(), others);
        // Inside the clamp (‖p‖ < 1e-8) the cosine is linear in p: a step of 1e-10 stays there, 1e-6 would not.
        double[] fdClamped = gradient(f, in, 0, weights, zeroCoords, 1e-10);
        check("flowMatchingLoss gradPred at the zero pixel (h = 1e-10)", fdClamped, got.gradPred(), zeroCoords);
        double normU = 0;
        for (int z : zeroCoords) {
            normU = Math.hypot(normU, target[z]);
        }
        for (int z : zeroCoords) {
            double byHand = gradScale * (-2.0 * target[z] / (c * plane) - target[z] / (1e-8 * normU) / plane);
            assertEquals(byHand, got.gradPred()[z], Math.abs(byHand) * 1e-6, "gradient at the zero pixel, by hand");
        }
    }

    @Test
    void flowMatchingLossWithoutGradientAndShapeErrors() {
        int[] shape = {2, 3, 2, 2};
        float[] pred = nonZero(950, 24), target = nonZero(951, 24);
        Tensor loss = CPU.upload("perSample", nans(2), 2);
        OPS.flowMatchingLoss(CPU.upload("pred", pred, shape), CPU.upload("target", target, shape), loss, null, 1f);
        assertBitIdentical("perSample without gradPred", runFm(pred, target, shape, 1f).perSample(),
                CPU.download(loss));
        Tensor p = CPU.upload("pred", pred, shape);
        assertThrows(ShapeException.class, () -> OPS.flowMatchingLoss(p, CPU.upload("t", target, 2, 3, 4), loss,
                null, 1f));
        assertThrows(ShapeException.class, () -> OPS.flowMatchingLoss(p, p, CPU.zeros(DType.F32, 3), null, 1f));
        assertThrows(ShapeException.class, () -> OPS.flowMatchingLoss(p, CPU.upload("t", target, shape), loss, p, 1f));
    }

    // ---------------------------------------------------------------- sum of squares

    @Test
    void sumOfSquaresAddsTheFloat64SumIndependentlyOfThreads() {
        float[] x = nonZero(1000, 40_003);
        double expected = 1.5;
        for (float v : x) {
            expected += (double) v * v;
        }
        float[][] results = new float[2][];
        int[] threads = {1, 3};
        for (int n = 0; n < 2; n++) {
            try (CpuBackend cpu = new CpuBackend(threads[n])) {
                Tensor acc = cpu.upload("acc", new float[] {1.5f}, 1);
                cpu.training().sumOfSquares(cpu.upload("x", x, 109, 367), acc);
                results[n] = cpu.download(acc);
            }
        }
        assertEquals((float) expected, results[0][0], Math.ulp((float) expected), "sum of squares");
        assertBitIdentical("sumOfSquares 1 vs 3 threads", results[0], results[1]);
        assertThrows(ShapeException.class,
                () -> OPS.sumOfSquares(CPU.upload("x", x, x.length), CPU.zeros(DType.F32, 2)));
    }

    // ---------------------------------------------------------------- AdamW

    @Test
    void adamwMatchesAFloat64HandComputationOverThreeSteps() {
        float[][] settings = {{1e-2f, 0f, 1f}, {3e-3f, 0.1f, 0.5f}}; // lr, weight decay, gradScale
        float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
        int n = 37;
        long seed = 1100;
        for (float[] s : settings) {
            float lr = s[0], wd = s[1], gradScale = s[2];
            float[] p0 = nonZero(seed++, n);
            Tensor param = CPU.upload("param", p0, n), m = CPU.zeros(DType.F32, n), v = CPU.zeros(DType.F32, n);
            float[] p = p0.clone(), mRef = new float[n], vRef = new float[n];
            for (int step = 1; step <= 3; step++) {
                float[] grad = nonZero(seed++, n);
                OPS.adamw(param, CPU.upload("grad", grad, n), m, v, lr, beta1, beta2, eps, wd, step, gradScale);
                double bc1 = 1 - Math.pow(beta1, step), bc2 = 1 - Math.pow(beta2, step);
                for (int i = 0; i < n; i++) {
                    double g = (double) gradScale * grad[i];
                    double pi = p[i] * (1 - (double) lr * wd);
                    double mi = mRef[i] + (g - mRef[i]) * (1 - (double) beta1);
                    double vi = beta2 * (double) vRef[i] + (1 - (double) beta2) * g * g;
                    double denom = Math.sqrt(vi) / Math.sqrt(bc2) + eps;
                    p[i] = (float) (pi - lr / bc1 * mi / denom);
                    mRef[i] = (float) mi;
                    vRef[i] = (float) vi;
                }
                String what = "adamw lr " + lr + " wd " + wd + " gradScale " + gradScale + " step " + step;
                assertWithinUlps(what + " param", p, CPU.download(param), 2);
                assertWithinUlps(what + " m", mRef, CPU.download(m), 2);
                assertWithinUlps(what + " v", vRef, CPU.download(v), 2);
            }
            float[] moved = CPU.download(param);
            for (int i = 0; i < n; i++) {
                assertTrue(moved[i] != p0[i], "param " + i + " moved: " + p0[i] + " → " + moved[i]);
            }
        }
    }

    private static void assertWithinUlps(String what, float[] expected, float[] actual, int ulps) {
        for (int i = 0; i < expected.length; i++) {
            if (!(Math.abs(actual[i] - expected[i]) <= ulps * Math.ulp(expected[i]))) {
                fail(what + ": element " + i + " is " + actual[i] + ", float64 hand computation gives " + expected[i]);
            }
        }
    }

    @Test
    void adamwRejectsBadHyperparametersAndSharedState() {
        Tensor p = CPU.upload("p", nonZero(1, 4), 4), g = CPU.upload("g", nonZero(2, 4), 4);
        Tensor m = CPU.zeros(DType.F32, 4), v = CPU.zeros(DType.F32, 4);
        assertThrows(IllegalArgumentException.class,
                () -> OPS.adamw(p, g, m, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 0, 1f));
        assertThrows(IllegalArgumentException.class, () -> OPS.adamw(p, g, m, v, 1e-3f, 1f, 0.999f, 1e-8f, 0f, 1, 1f));
        assertThrows(IllegalArgumentException.class,
                () -> OPS.adamw(p, g, m, v, Float.NaN, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f));
        assertThrows(ShapeException.class, () -> OPS.adamw(p, g, m, m, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f));
        assertThrows(ShapeException.class,
                () -> OPS.adamw(p, g, CPU.zeros(DType.F32, 5), v, 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f));
    }
}
