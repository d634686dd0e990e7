package facm.backend.cpu;

import static facm.backend.cpu.ConsistencyLossCases.FACM;
import static facm.backend.cpu.ConsistencyLossCases.MEAN_FLOW;
import static facm.backend.cpu.ConsistencyLossCases.SCM;
import static facm.backend.cpu.ConsistencyLossCases.coefs;
import static facm.backend.cpu.ConsistencyLossCases.inputs;
import static facm.backend.cpu.FiniteDifferences.assertBitIdentical;
import static facm.backend.cpu.FiniteDifferences.checkForward;
import static facm.backend.cpu.FiniteDifferences.coordinates;
import static facm.backend.cpu.FiniteDifferences.toDouble;
import static facm.backend.cpu.ReferenceData.nans;
import static facm.backend.cpu.ReferenceData.numel;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import facm.backend.cpu.ConsistencyLossCases.Config;
import facm.tensor.DType;
import facm.tensor.ShapeException;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.Arrays;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * {@link CpuTrainingOps#consistencyLoss} for FACM, MeanFlow and sCM ({@link ConsistencyLossCases}): the per-sample loss
 * against a float64 transcription of the contract's formulas written here, the gradient against that transcription
 * element by element and against central finite differences of the stop-gradient objective
 * F ↦ Σ_b gradScale·β_b·mean_i(F_i − target_i)²/(e_b⁰ + eps)^power (target and denominator frozen at the base point),
 * a NaN confined to its sample, gradPred = null, and every argument check.
 *
 * <p>Tolerances: loss as {@link FiniteDifferences#checkForward} (2 ulp + 1e-6·max); gradient vs the float64 formula
 * within 4 ulp of fp32 + 1e-6·max|ref| per element; finite differences as {@link FiniteDifferences#check} (max-norm
 * relative error below 1e-4).
 */
class CpuConsistencyLossTest {
    private static final CpuBackend CPU = new CpuBackend(3);
    private static final TrainingOps OPS = CPU.training();
    private static final float GRAD_SCALE = 0.37f;
    /** Coordinates per gradient checked by finite differences (each costs two evaluations of the whole batch). */
    private static final int FD_COORDS = 300;

    @AfterAll
    static void closeBackend() {
        CPU.close();
    }

    /** The float64 transcription: per-sample loss, gradient, the target and the frozen denominator (e⁰ + eps)^power. */
    private record Reference(double[] loss, double[] grad, double[] target, double[] denominator) {
    }

    private static Reference reference(double[] f, double[] fDot, double[] v, double[] coefs, int batch, Config c,
                                       double gradScale) {
        int n = f.length / batch;
        double[] loss = new double[batch], grad = new double[f.length], target = new double[f.length];
        double[] denominator = new double[batch];
        for (int b = 0; b < batch; b++) {
            double k = coefs[3 * b], alpha = coefs[3 * b + 1], beta = coefs[3 * b + 2];
            double[] delta = new double[n];
            for (int i = 0; i < n; i++) {
                int j = b * n + i;
                double residual = f[j] - v[j] - k * fDot[j];
                if (c.clipped()) {
                    residual = Math.max(-c.clip(), Math.min(c.clip(), residual));
                }
                delta[i] = alpha * residual;
            }
            if (c.normEps() > 0) {
                double rms = Math.sqrt(Arrays.stream(delta).map(x -> x * x).sum() / n);
                for (int i = 0; i < n; i++) {
                    delta[i] /= rms + c.normEps();
                }
            }
            double e = 0;
            for (int i = 0; i < n; i++) {
                int j = b * n + i;
                target[j] = f[j] - delta[i];
                e += (f[j] - target[j]) * (f[j] - target[j]) / n;
            }
            denominator[b] = Math.pow(e + c.weightEps(), c.weightPower());
            loss[b] = beta * e / denominator[b];
            for (int i = 0; i < n; i++) {
                int j = b * n + i;
                grad[j] = gradScale * beta / denominator[b] * 2 * (f[j] - target[j]) / n;
            }
        }
        return new Reference(loss, grad, target, denominator);
    }

    private record Result(float[] perSample, float[] gradPred) {
    }

    private static Result run(float[] pred, float[] tangent, float[] velocity, float[] coefs, int[] shape, Config c,
                              boolean withGradient) {
        int b = shape[0];
        Tensor loss = CPU.upload("perSample", nans(b), b);
        Tensor grad = withGradient ? CPU.upload("gradPred", nans(numel(shape)), shape) : null;
        OPS.consistencyLoss(CPU.upload("pred", pred, shape), CPU.upload("tangent", tangent, shape),
                CPU.upload("velocity", velocity, shape), CPU.upload("coefs", coefs, b, 3), c.clip(), c.normEps(),
                c.weightPower(), c.weightEps(), loss, grad, GRAD_SCALE);
        return new Result(CPU.download(loss), grad == null ? null : CPU.download(grad));
    }

    private static void checkCase(Config c, int[] shape, long seed) {
        checkCase(c, c, shape, seed);
    }

    /** One case: the op's scalars from {@code c}, the per-sample coefficients as {@code coefsOf} computes them. */
    private static void checkCase(Config c, Config coefsOf, int[] shape, long seed) {
        String name = "consistencyLoss " + c.name() + " " + Arrays.toString(shape);
        int n = numel(shape), batch = shape[0];
        float[] pred = inputs(seed, n), tangent = inputs(seed + 1, n), velocity = inputs(seed + 2, n);
        float[] coefs = coefs(coefsOf, batch, seed + 3);
        Result got = run(pred, tangent, velocity, coefs, shape, c, true);
        double[] f = toDouble(pred);
        Reference ref = reference(f, toDouble(tangent), toDouble(velocity), toDouble(coefs), batch, c, GRAD_SCALE);
        checkForward(name + " perSample", ref.loss(), got.perSample());
        assertClose(name + " gradPred vs float64 formula", ref.grad(), got.gradPred());

        // The stop-gradient objective: target and denominator frozen at the base point, only F moves.
        int perSample = n / batch;
        FiniteDifferences.Forward frozen = x -> {
            double[] out = new double[batch];
            for (int b = 0; b < batch; b++) {
                double beta = coefs[3 * b + 2], sum = 0;
                for (int j = b * perSample; j < (b + 1) * perSample; j++) {
                    sum += (x[0][j] - ref.target()[j]) * (x[0][j] - ref.target()[j]);
                }
                out[b] = beta * sum / perSample / ref.denominator()[b];
            }
            return out;
        };
        double[] weights = new double[batch];
        Arrays.fill(weights, GRAD_SCALE);
        int[] coords = coordinates(n, FD_COORDS, seed + 4);
        double[] fd = FiniteDifferences.gradient(frozen, new double[][] {f}, 0, weights, coords);
        FiniteDifferences.check(name + " gradPred vs finite differences", fd, got.gradPred(), coords);
    }

    @Test
    void facmMatchesFloat64AndFiniteDifferences() {
        long seed = 3000;
        for (int[] shape : ConsistencyLossCases.SHAPES) {
            checkCase(FACM, shape, seed += 10);
        }
        checkCase(FACM, new int[] {3, 17}, seed + 10); // rank 2 is allowed: N = the product of the trailing dims
    }

    @Test
    void meanFlowMatchesFloat64AndFiniteDifferences() {
        long seed = 3100;
        for (int[] shape : ConsistencyLossCases.SHAPES) {
            checkCase(MEAN_FLOW, shape, seed += 10);
        }
    }

    @Test
    void sCmMatchesFloat64AndFiniteDifferences() {
        long seed = 3200;
        for (int[] shape : ConsistencyLossCases.SHAPES) {
            checkCase(SCM, shape, seed += 10);
        }
    }

    @Test
    void everyTermAtOnce() {
        // Clip, normalization and weighting together (no method uses all three; the op allows it).
        checkCase(new Config("clip 0.5 + norm + power 0.5", 0.5f, 0.1f, 0.5f, 1e-3f), FACM, new int[] {3, 4, 16, 16},
                3300);
    }

    @Test
    void facmClipIsActiveForSomeResidualsAndNotOthers() {
        int[] shape = ConsistencyLossCases.SHAPES[2];
        int n = numel(shape), perSample = n / shape[0];
        long seed = 3030; // the seed checkCase uses for this shape in facmMatchesFloat64AndFiniteDifferences
        float[] pred = inputs(seed, n), tangent = inputs(seed + 1, n), velocity = inputs(seed + 2, n);
        float[] coefs = coefs(FACM, shape[0], seed + 3);
        int above = 0;
        for (int j = 0; j < n; j++) {
            double residual = (double) pred[j] - velocity[j] - coefs[3 * (j / perSample)] * (double) tangent[j];
            above += Math.abs(residual) > FACM.clip() ? 1 : 0;
        }
        assertTrue(above > n / 10 && above < n - n / 10, "clip active on " + above + " of " + n + " residuals");
    }

    @Test
    void nanInVelocityPoisonsItsSampleOnly() {
        int[] shape = {3, 1, 5, 7};
        int n = numel(shape), perSample = n / 3;
        for (Config c : ConsistencyLossCases.ALL) {
            float[] pred = inputs(3400, n), tangent = inputs(3401, n), velocity = inputs(3402, n);
            float[] coefs = coefs(c, 3, 3403);
            Result clean = run(pred, tangent, velocity, coefs, shape, c, true);
            velocity[perSample + 7] = Float.NaN;
            Result poisoned = run(pred, tangent, velocity, coefs, shape, c, true);
            assertTrue(Float.isNaN(poisoned.perSample()[1]), c.name() + ": sample 1's loss is NaN");
            for (int b : new int[] {0, 2}) {
                assertEquals(clean.perSample()[b], poisoned.perSample()[b], 0f, c.name() + ": sample " + b);
                for (int j = b * perSample; j < (b + 1) * perSample; j++) {
                    assertEquals(clean.gradPred()[j], poisoned.gradPred()[j], 0f, c.name() + ": gradPred " + j);
                }
            }
        }
    }

    @Test
    void withoutGradientTheLossIsTheSame() {
        int[] shape = {3, 4, 5, 7};
        int n = numel(shape);
        for (Config c : ConsistencyLossCases.ALL) {
            float[] pred = inputs(3500, n), tangent = inputs(3501, n), velocity = inputs(3502, n);
            float[] coefs = coefs(c, 3, 3503);
            assertBitIdentical(c.name() + " perSample without gradPred",
                    run(pred, tangent, velocity, coefs, shape, c, true).perSample(),
                    run(pred, tangent, velocity, coefs, shape, c, false).perSample());
        }
    }

    /** |got − ref| ≤ 4 ulp(fp32 ref) + 1e-6·max|ref| per element, NaN nowhere. */
    private static void assertClose(String what, double[] expected, float[] actual) {
        double max = Arrays.stream(expected).map(Math::abs).max().orElse(0);
        for (int i = 0; i < expected.length; i++) {
            double tol = 4 * Math.ulp((float) expected[i]) + 1e-6 * max;
            if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
                fail(what + ": element " + i + " is " + actual[i] + ", float64 gives " + expected[i]);
            }
        }
    }

    // ---------------------------------------------------------------- argument checks

    private static void expectError(Class<? extends Throwable> type, String mentions, Executable call) {
        Throwable e = assertThrows(type, call);
        String message = e.getMessage();
        assertTrue(message.startsWith("consistencyLoss"), "message names the op: " + message);
        assertTrue(message.contains(mentions), "message mentions '" + mentions + "': " + message);
        assertFalse(message.contains("\n"), "one-line message: " + message);
    }

    @Test
    void rejectsBadArguments() {
        int[] shape = {2, 3, 2, 2};
        int n = numel(shape);
        Tensor f = CPU.upload("pred", inputs(1, n), shape), t = CPU.upload("tangent", inputs(2, n), shape);
        Tensor v = CPU.upload("velocity", inputs(3, n), shape), k = CPU.upload("coefs", coefs(FACM, 2, 4), 2, 3);
        Tensor loss = CPU.upload("perSample", nans(2), 2), g = CPU.upload("gradPred", nans(n), shape);
        Config c = FACM;
        float clip = c.clip(), ne = c.normEps(), wp = c.weightPower(), we = c.weightEps();
        OPS.consistencyLoss(f, t, v, k, clip, ne, wp, we, loss, g, 1f); // the valid call the cases below break

        for (String role : new String[] {"pred", "tangent", "velocity", "coefs", "perSample"}) {
            Tensor[] a = {f, t, v, k, loss};
            a[Arrays.asList("pred", "tangent", "velocity", "coefs", "perSample").indexOf(role)] = null;
            expectError(NullPointerException.class, role,
                    () -> OPS.consistencyLoss(a[0], a[1], a[2], a[3], clip, ne, wp, we, a[4], g, 1f));
        }
        Tensor bf16 = CPU.zeros(DType.BF16, shape);
        expectError(ShapeException.class, "tangent",
                () -> OPS.consistencyLoss(f, bf16, v, k, clip, ne, wp, we, loss, g, 1f));
        expectError(ShapeException.class, "gradPred",
                () -> OPS.consistencyLoss(f, t, v, k, clip, ne, wp, we, loss, bf16, 1f));
        expectError(ShapeException.class, "coefs",
                () -> OPS.consistencyLoss(f, t, v, CPU.empty("coefs", DType.I32, 2, 3), clip, ne, wp, we, loss, g, 1f));
        Tensor rank1 = CPU.upload("flat", inputs(5, n), n);
        expectError(ShapeException.class, "rank >= 2",
                () -> OPS.consistencyLoss(rank1, rank1, rank1, CPU.zeros(DType.F32, n, 3), clip, ne, wp, we,
                        CPU.zeros(DType.F32, n), null, 1f));
        Tensor other = CPU.upload("other", inputs(6, n), 2, 3, 4);
        expectError(ShapeException.class, "tangent vs pred",
                () -> OPS.consistencyLoss(f, other, v, k, clip, ne, wp, we, loss, g, 1f));
        expectError(ShapeException.class, "velocity vs pred",
                () -> OPS.consistencyLoss(f, t, other, k, clip, ne, wp, we, loss, g, 1f));
        expectError(ShapeException.class, "gradPred vs pred",
                () -> OPS.consistencyLoss(f, t, v, k, clip, ne, wp, we, loss, other, 1f));
        expectError(ShapeException.class, "coefs",
                () -> OPS.consistencyLoss(f, t, v, CPU.zeros(DType.F32, 2, 2), clip, ne, wp, we, loss, g, 1f));
        expectError(ShapeException.class, "perSample",
                () -> OPS.consistencyLoss(f, t, v, k, clip, ne, wp, we, CPU.zeros(DType.F32, 3), g, 1f));
        Tensor empty = CPU.zeros(DType.F32, 2, 0, 3);
        expectError(ShapeException.class, "no elements",
                () -> OPS.consistencyLoss(empty, empty, empty, k, clip, ne, wp, we, loss, null, 1f));

        // Outputs apart from inputs and from each other.
        for (Tensor input : new Tensor[] {f, t, v}) {
            expectError(ShapeException.class, "must not share storage with " + input.describe(),
                    () -> OPS.consistencyLoss(f, t, v, k, clip, ne, wp, we, loss, input.reshape(shape), 1f));
        }
        Tensor wide = CPU.upload("wide", inputs(7, 6), 2, 3), wideT = CPU.upload("wideT", inputs(8, 6), 2, 3);
        Tensor wideLoss = CPU.zeros(DType.F32, 2);
        expectError(ShapeException.class, "must not share storage with coefs",
                () -> OPS.consistencyLoss(wide, wideT, wideT, k, clip, ne, wp, we, wideLoss, k, 1f));
        Tensor column = CPU.upload("column", inputs(9, 2), 2, 1);
        expectError(ShapeException.class, "must not share storage with column",
                () -> OPS.consistencyLoss(column, column, column, k, clip, ne, wp, we, column.reshape(2), null, 1f));
        Tensor colGrad = CPU.empty("gradPred", DType.F32, 2, 1), colLoss = colGrad.reshape(2);
        expectError(ShapeException.class, "gradPred",
                () -> OPS.consistencyLoss(column, column, column, k, clip, ne, wp, we, colLoss,
                        colGrad, 1f)); // gradPred and perSample are one buffer

        // Scalars.
        expectError(IllegalArgumentException.class, "clip",
                () -> OPS.consistencyLoss(f, t, v, k, Float.NaN, ne, wp, we, loss, g, 1f));
        expectError(IllegalArgumentException.class, "normEps",
                () -> OPS.consistencyLoss(f, t, v, k, clip, Float.POSITIVE_INFINITY, wp, we, loss, g, 1f));
        expectError(IllegalArgumentException.class, "weightPower",
                () -> OPS.consistencyLoss(f, t, v, k, clip, ne, Float.NaN, we, loss, g, 1f));
        expectError(IllegalArgumentException.class, "weightEps",
                () -> OPS.consistencyLoss(f, t, v, k, clip, ne, wp, Float.NaN, loss, g, 1f));
        expectError(IllegalArgumentException.class, "weightEps must be > 0",
                () -> OPS.consistencyLoss(f, t, v, k, clip, ne, wp, 0f, loss, g, 1f));
        expectError(IllegalArgumentException.class, "gradScale",
                () -> OPS.consistencyLoss(f, t, v, k, clip, ne, wp, we, loss, g, Float.NaN));
        expectError(IllegalArgumentException.class, "gradScale",
                () -> OPS.consistencyLoss(f, t, v, k, clip, ne, wp, we, loss, null, Float.POSITIVE_INFINITY));
        // Accepted edge values: weightEps 0 with power 0, no clip as 0, −1 or +∞, negative normEps (no normalization).
        OPS.consistencyLoss(f, t, v, k, Float.POSITIVE_INFINITY, -1f, 0f, 0f, loss, g, 1f);
        OPS.consistencyLoss(f, t, v, k, -1f, 0f, 1f, 1e-3f, loss, null, 0f);
    }
}
