package facm.training;

import facm.model.ModelWeights;

/**
 * Karras et al.'s power-function EMA as FACM uses it (facm-spec.md §5.6, {@code KarrasEMA} of ema_pytorch): the k-th
 * update (k = 1, 2, …) uses β_k = (1 − 1/(k+1))^(1+γ), and the first one copies θ. γ follows from the relative
 * width σ_rel of the averaging profile as the largest real root of γ³ + 7γ² + (16 − σ⁻²)γ + (12 − σ⁻²) = 0
 * (γ ≈ 16.97 for σ_rel 0.05, γ ≈ 1.826 for 0.2). The average covers this run's updates only (§11.17).
 */
public final class PowerEma extends Ema {
    private final double sigmaRel;
    private final double gamma;

    public PowerEma(double sigmaRel, ModelWeights model) {
        super("power_" + EmaSet.number(sigmaRel), model);
        this.sigmaRel = sigmaRel;
        this.gamma = gamma(sigmaRel);
    }

    public double sigmaRel() {
        return sigmaRel;
    }

    public double gamma() {
        return gamma;
    }

    @Override
    public String spec() {
        return "power:" + EmaSet.number(sigmaRel);
    }

    @Override
    public double decay(long k) {
        if (k < 1) {
            throw new IllegalArgumentException("EMA update index starts at 1, got " + k);
        }
        return k == 1 ? 0.0 : Math.pow(1.0 - 1.0 / (k + 1), 1.0 + gamma);
    }

    /**
     * The largest real root of p(γ) = γ³ + 7γ² + (16 − s)γ + (12 − s), s = σ_rel⁻² (Algorithm 2 of Karras et al.;
     * ema_pytorch takes the largest real part of numpy.roots). p is positive beyond the Cauchy bound, so scanning down
     * from there finds the first sign change, which bisection then narrows to full double precision. The profile
     * needs γ > −1; σ_rel up to about 0.2887 gives γ ≥ 0.
     */
    public static double gamma(double sigmaRel) {
        if (!(sigmaRel > 0) || Double.isInfinite(sigmaRel)) {
            throw new IllegalArgumentException("power EMA sigma_rel must be > 0, got " + sigmaRel);
        }
        double s = 1.0 / (sigmaRel * sigmaRel);
        double bound = 1 + Math.max(7, Math.max(Math.abs(16 - s), Math.abs(12 - s)));
        int steps = 1 << 16;
        double hi = bound;
        double lo = Double.NaN;
        for (int i = 1; i <= 2 * steps; i++) {
            double x = bound * (1.0 - (double) i / steps);
            if (poly(x, s) <= 0) {
                lo = x;
                break;
            }
            hi = x;
        }
        for (int i = 0; i < 200 && hi - lo > 0; i++) {
            double mid = 0.5 * (lo + hi);
            if (mid == lo || mid == hi) {
                break;
            }
            if (poly(mid, s) <= 0) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        double g = 0.5 * (lo + hi);
        if (!(g > -1)) {
            throw new IllegalArgumentException("power EMA sigma_rel " + sigmaRel + " gives gamma " + g
                    + " <= -1: no averaging profile; use a smaller sigma_rel");
        }
        return g;
    }

    private static double poly(double g, double s) {
        return ((g + 7) * g + 16 - s) * g + 12 - s;
    }
}
