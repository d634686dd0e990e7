package facm.backend.cpu;


import facm.tensor.Tensor;
import facm.tensor.TrainingChecks;
import facm.tensor.TrainingOps;

import java.util.Objects;

/**
 * The losses and optimizer step of {@link TrainingOps} on the CPU: the reference for the CUDA kernels. Everything is
 * computed in float64 from the fp32 inputs and each stored value is rounded to fp32 once. Sums run in an order fixed
 * by the shapes (per sample, or over fixed-size blocks added in order), never by the thread count, so results are
 * bit-reproducible.
 */
public final class CpuTrainingOps implements TrainingOps {
    /**
     * The clamp of the cosine similarity's norms (torch.nn.functional.cosine_similarity's default eps, facm-spec.md
     * §4).
     */
    static final double COSINE_EPS = 1e-8;

    /** Elements per partial sum of {@link #sumOfSquares}: fixed, so the summation order is too. */
    static final int SUM_BLOCK = 1 << 14;

    private final CpuBackend backend;
    private final CpuNetworkArgs args;

    public CpuTrainingOps(CpuBackend backend) {
        this.backend = Objects.requireNonNull(backend, "CpuTrainingOps: backend is null");
        this.args = new CpuNetworkArgs(backend);
    }

    /**
     * ℓ_b = mean_{C,H,W}(p − u)² + mean_{H,W}(1 − cos_C(p, u)), cos = p·u / (max(‖p‖, ε)·max(‖u‖, ε)), split over
     * samples. The gradient of the cosine term at one pixel, with n_p = ‖p‖, c_p = max(n_p, ε), c_u = max(‖u‖, ε):
     * ∂cos/∂p = u/(c_p·c_u) − cos·p/n_p² when n_p > ε; when the clamp is active c_p is the constant ε and
     * ∂cos/∂p = u/(ε·c_u) (at p = 0 this is also what PyTorch's autograd gives). The MSE term contributes
     * 2(p − u)/(C·H·W); both are scaled by gradScale.
     */
    @Override
    public void flowMatchingLoss(Tensor pred, Tensor target, Tensor perSample, Tensor gradPred, float gradScale) {
        String op = "flowMatchingLoss";
        TrainingChecks.flowMatchingLoss(pred, target, perSample, gradPred, gradScale);
        CpuTensor p = f32(op, "pred", pred);
        CpuTensor u = f32(op, "target", target);
        CpuTensor loss = f32(op, "perSample", perSample);
        int b = p.dim(0), c = p.dim(1), plane = p.dim(2) * p.dim(3);
        CpuTensor g = gradPred == null ? null : f32(op, "gradPred", gradPred);
        float[] ps = p.f32(), us = u.f32(), ls = loss.f32(), gs = g == null ? null : g.f32();
        double mseScale = 2.0 / ((double) c * plane), cosScale = 1.0 / plane;
        backend.parallel().forRange(b, CpuNetworkOps.grain(8L * c * plane), (s, e) -> {
            for (int sample = (int) s; sample < e; sample++) {
                int base = sample * c * plane;
                double squares = 0, oneMinusCos = 0;
                for (int pixel = 0; pixel < plane; pixel++) {
                    double pp = 0, uu = 0, pu = 0;
                    for (int ch = 0; ch < c; ch++) {
                        int i = base + ch * plane + pixel;
                        double pi = ps[i], ui = us[i], diff = pi - ui;
                        squares += diff * diff;
                        pp += pi * pi;
                        uu += ui * ui;
                        pu += pi * ui;
                    }
                    double normP = Math.sqrt(pp);
                    double clampedP = Math.max(normP, COSINE_EPS), clampedU = Math.max(Math.sqrt(uu), COSINE_EPS);
                    double cos = pu / (clampedP * clampedU);
                    oneMinusCos += 1.0 - cos;
                    if (gs == null) {
                        continue;
                    }
                    // The clamp's own derivative is zero: only the unclamped norm depends on p.
                    double normTerm = normP > COSINE_EPS ? cos / (normP * normP) : 0.0;
                    for (int ch = 0; ch < c; ch++) {
                        int i = base + ch * plane + pixel;
                        double dCos = us[i] / (clampedP * clampedU) - normTerm * ps[i];
                        gs[i] = (float) (gradScale * (mseScale * ((double) ps[i] - us[i]) - cosScale * dCos));
                    }
                }
                ls[sample] = (float) (squares / ((double) c * plane) + oneMinusCos / plane);
            }
        });
    }

    /**
     * The consistency losses (contract in {@link TrainingOps#consistencyLoss}), per sample in float64 and split over
     * samples: (a) when normEps &gt; 0, S = Σ Δ² of the unnormalized Δ and the divisor rms + normEps = √(S/N) + normEps;
     * (b) e = Σ Δ²/N of the final Δ; (c) L = β·e/w with w = (e + weightEps)^weightPower (exactly 1 when the power is
     * 0), and gradPred = (gradScale·β/w·2/N)·Δ. Δ is recomputed from the inputs in each pass instead of being stored.
     * The clip is written with comparisons so that a NaN residual stays NaN (Math.min/max would too, but the CUDA
     * kernel's fmin/fmax would not: both backends use the same form).
     */
    @Override
    public void consistencyLoss(Tensor pred, Tensor tangent, Tensor velocity, Tensor coefs, float clip,
                                float normEps, float weightPower, float weightEps, Tensor perSample, Tensor gradPred,
                                float gradScale) {
        String op = "consistencyLoss";
        TrainingChecks.consistencyLoss(pred, tangent, velocity, coefs, clip, normEps, weightPower, weightEps,
                perSample, gradPred, gradScale);
        CpuTensor f = f32(op, "pred", pred);
        float[] fs = f.f32(), ts = f32(op, "tangent", tangent).f32(), vs = f32(op, "velocity", velocity).f32();
        float[] cs = f32(op, "coefs", coefs).f32(), ls = f32(op, "perSample", perSample).f32();
        float[] gs = gradPred == null ? null : f32(op, "gradPred", gradPred).f32();
        int b = f.dim(0);
        if (b == 0) {
            return;
        }
        int n = (int) (f.numel() / b);
        double limit = clip > 0 && clip < Float.POSITIVE_INFINITY ? clip : Double.POSITIVE_INFINITY;
        backend.parallel().forRange(b, CpuNetworkOps.grain(12L * n), (s, e) -> {
            for (int sample = (int) s; sample < e; sample++) {
                int base = sample * n;
                double k = cs[3 * sample], alpha = cs[3 * sample + 1], beta = cs[3 * sample + 2];
                double divisor = 1.0;
                if (normEps > 0) {
                    double squares = 0;
                    for (int i = base; i < base + n; i++) {
                        double d = consistencyDelta(fs[i], ts[i], vs[i], k, alpha, limit);
                        squares += d * d;
                    }
                    divisor = Math.sqrt(squares / n) + normEps;
                }
                double squares = 0;
                for (int i = base; i < base + n; i++) {
                    double d = consistencyDelta(fs[i], ts[i], vs[i], k, alpha, limit) / divisor;
                    squares += d * d;
                }
                double meanSquare = squares / n;
                double weight = weightPower == 0 ? 1.0 : Math.pow(meanSquare + weightEps, weightPower);
                ls[sample] = (float) (beta * meanSquare / weight);
                if (gs != null) {
                    double factor = gradScale * beta / weight * 2.0 / n;
                    for (int i = base; i < base + n; i++) {
                        gs[i] = (float) (factor * (consistencyDelta(fs[i], ts[i], vs[i], k, alpha, limit) / divisor));
                    }
                }
            }
        });
    }

    /**
     * Δ = α·clip(F − (v + k·Ḟ), ±limit) before the normalization, in the operation order of kernels/loss.cu (which
     * rounds each step the same way), so both backends agree exactly on Δ even where the residual cancels.
     */
    static double consistencyDelta(float pred, float tangent, float velocity, double k, double alpha, double limit) {
        double d = (double) pred - ((double) velocity + k * tangent);
        if (d > limit) {
            d = limit;
        } else if (d < -limit) {
            d = -limit;
        }
        return alpha * d;
    }

    /** acc[0] += Σ x², summed in float64 over fixed blocks of {@link #SUM_BLOCK} elements added in block order. */
    @Override
    public void sumOfSquares(Tensor x, Tensor acc) {
        String op = "sumOfSquares";
        TrainingChecks.sumOfSquares(x, acc);
        CpuTensor in = f32(op, "x", x);
        CpuTensor a = f32(op, "acc", acc);
        float[] xs = in.f32();
        int blocks = (int) ((xs.length + (long) SUM_BLOCK - 1) / SUM_BLOCK);
        double[] partial = new double[blocks];
        backend.parallel().forRange(blocks, 1, (s, e) -> {
            for (int block = (int) s; block < e; block++) {
                double sum = 0;
                int end = (int) Math.min(xs.length, (long) (block + 1) * SUM_BLOCK);
                for (int i = block * SUM_BLOCK; i < end; i++) {
                    double v = xs[i];
                    sum += v * v;
                }
                partial[block] = sum;
            }
        });
        double total = 0;
        for (double v : partial) {
            total += v;
        }
        float[] as = a.f32();
        as[0] = (float) (as[0] + total);
    }

    /**
     * PyTorch's AdamW (decoupled weight decay) per element in float64: g = gradScale·grad; p ← p − lr·wd·p;
     * m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p − lr·(m/(1−β1^step)) / (√(v/(1−β2^step)) + eps), with the
     * new m and v; p, m and v are each rounded to fp32 once.
     */
    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                      float weightDecay, int step, float gradScale) {
        String op = "adamw";
        TrainingChecks.adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        CpuTensor p = f32(op, "param", param);
        CpuTensor g = f32(op, "grad", grad);
        CpuTensor m1 = f32(op, "m", m);
        CpuTensor m2 = f32(op, "v", v);
        double b1 = beta1, b2 = beta2, rate = lr, decay = (double) lr * weightDecay;
        double correction1 = 1.0 - Math.pow(b1, step), correction2 = 1.0 - Math.pow(b2, step);
        float[] ps = p.f32(), gs = g.f32(), ms = m1.f32(), vs = m2.f32();
        backend.parallel().forRange(ps.length, CpuNetworkOps.ELEMENTS_PER_TASK / 4, (s, e) -> {
            for (int i = (int) s; i < e; i++) {
                double gi = (double) gradScale * gs[i];
                double mi = b1 * ms[i] + (1.0 - b1) * gi;
                double vi = b2 * vs[i] + (1.0 - b2) * gi * gi;
                double pi = ps[i] - decay * ps[i];
                pi -= rate * (mi / correction1) / (Math.sqrt(vi / correction2) + eps);
                ms[i] = (float) mi;
                vs[i] = (float) vi;
                ps[i] = (float) pi;
            }
        });
    }

    private CpuTensor f32(String op, String role, Tensor t) {
        return args.f32(op, role, t);
    }
}
