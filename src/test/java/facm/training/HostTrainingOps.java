package facm.training;

import facm.tensor.Backend;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

/**
 * A float64 host implementation of the two TrainingOps the trainer uses (sumOfSquares, adamw), through download and
 * upload+copy, so the training loop can be tested on any backend before the backends' own TrainingOps exist. When a
 * backend has them, {@link #of} returns those instead.
 */
final class HostTrainingOps implements TrainingOps {
    private final Backend be;

    private HostTrainingOps(Backend be) {
        this.be = be;
    }

    /** The backend's own TrainingOps if it has them, else this host version. */
    static TrainingOps of(Backend be) {
        try {
            return be.training();
        } catch (UnsupportedOperationException notYet) {
            return new HostTrainingOps(be);
        }
    }

    static TrainingOps host(Backend be) {
        return new HostTrainingOps(be);
    }

    @Override
    public void flowMatchingLoss(Tensor pred, Tensor target, Tensor perSample, Tensor gradPred, float gradScale) {
        throw new UnsupportedOperationException("not needed by the trainer tests");
    }

    @Override
    public void consistencyLoss(Tensor pred, Tensor tangent, Tensor velocity, Tensor coefs, float clip, float normEps,
                                float weightPower, float weightEps, Tensor perSample, Tensor gradPred,
                                float gradScale) {
        throw new UnsupportedOperationException("not needed by the trainer tests");
    }

    @Override
    public void sumOfSquares(Tensor x, Tensor acc) {
        double s = be.download(acc)[0];
        for (float v : be.download(x)) {
            s += (double) v * v;
        }
        write(new float[] {(float) s}, acc);
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, float lr, float beta1, float beta2, float eps,
                      float weightDecay, int step, float gradScale) {
        float[] p = be.download(param);
        float[] g = be.download(grad);
        float[] mm = be.download(m);
        float[] vv = be.download(v);
        double bc1 = 1 - Math.pow(beta1, step);
        double bc2 = 1 - Math.pow(beta2, step);
        for (int i = 0; i < p.length; i++) {
            double gi = (double) gradScale * g[i];
            double pi = p[i] * (1 - (double) lr * weightDecay);
            double mi = beta1 * (double) mm[i] + (1 - (double) beta1) * gi;
            double vi = beta2 * (double) vv[i] + (1 - (double) beta2) * gi * gi;
            pi -= lr * (mi / bc1) / (Math.sqrt(vi / bc2) + eps);
            p[i] = (float) pi;
            mm[i] = (float) mi;
            vv[i] = (float) vi;
        }
        write(p, param);
        write(mm, m);
        write(vv, v);
    }

    private void write(float[] values, Tensor dst) {
        try (Tensor t = be.upload("host", values, dst.shape())) {
            be.copy(t, dst);
        }
    }
}
