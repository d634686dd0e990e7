package facm.training;

import facm.model.ModelWeights;

/**
 * The constant-decay EMA of LightningDiT's stage-1 recipe (facm-spec.md §4): initialized with a copy of the weights,
 * then ema ← d·ema + (1 − d)·θ after every optimizer step (d = 0.9999 there).
 */
public final class ClassicEma extends Ema {
    private final double decay;

    public ClassicEma(double decay, ModelWeights model) {
        super("classic_" + EmaSet.number(check(decay)), model);
        this.decay = decay;
    }

    private static double check(double decay) {
        if (!(decay >= 0 && decay < 1)) {
            throw new IllegalArgumentException("classic EMA decay must be in [0, 1), got " + decay);
        }
        return decay;
    }

    @Override
    public String spec() {
        return "classic:" + EmaSet.number(decay);
    }

    @Override
    public double decay(long k) {
        return decay;
    }
}
