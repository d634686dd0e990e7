package facm.sampling;

import facm.model.LightningDiT;
import facm.tensor.Backend;
import facm.tensor.Tensor;

import java.util.function.Function;

/** {@link ForwardEvaluator} by plain {@link LightningDiT#forward} calls, on any backend. */
final class EagerForward implements ForwardEvaluator {
    private final LightningDiT model;

    EagerForward(LightningDiT model) {
        this.model = model;
    }

    @Override
    public float[] evaluate(double[] x, int[] shape, double tau, double r, Tensor y) {
        Backend be = y.backend();
        try (Tensor xt = be.upload("x_t", HostState.toFloat(x), shape)) {
            return withForward(xt, tau, r, y, be::download);
        }
    }

    @Override
    public <T> T withForward(Tensor x, double tau, double r, Tensor y, Function<Tensor, T> use) {
        Backend be = x.backend();
        int b = x.dim(0);
        try (Tensor tt = be.upload("tau", HostState.filled(b, (float) tau), b);
             Tensor rt = model.config().auxTime() ? be.upload("r", HostState.filled(b, (float) r), b) : null;
             Tensor f = model.forward(x, tt, y, rt)) {
            return use.apply(f);
        }
    }

    @Override
    public boolean usesCudaGraphs() {
        return false;
    }

    @Override
    public void close() {
    }
}
