package facm.autograd;

import facm.model.LightningDiT;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;

/**
 * One training-style pass of a LightningDiT on Philox weights and inputs, everything read back to the host: the FM
 * form (forward with a tape, backward of L = Σ r ⊙ F) or the JVP form (forward mode with a tape on the primal, the
 * same backward through the primal). Used to compare two set-ups of the same model bit for bit (the bf16 operand
 * fusions, activation checkpointing) on any backend.
 *
 * @param output  F (the primal output)
 * @param tangent Ḟ (JVP form only, else null)
 * @param grads   every parameter's gradient, by name
 */
record TrainingPassRun(float[] output, float[] tangent, Map<String, float[]> grads) {

    /** Runs the pass on model {@code c} with Philox weights of {@code seed}, the model set up by {@code setup}. */
    static TrainingPassRun run(Backend be, ModelConfig c, int batch, long seed, boolean jvp,
                               Consumer<LightningDiT> setup) {
        float[] ts = new float[batch];
        int[] ys = new int[batch];
        for (int i = 0; i < batch; i++) {
            ts[i] = 0.15f + 0.7f * i / Math.max(1, batch - 1);
            ys[i] = i == batch - 1 ? c.nullClass() : (5 * i + 2) % c.numClasses();
        }
        int[] xShape = {batch, c.inChannels(), c.inputSize(), c.inputSize()};
        try (ModelWeights w = ModelWeights.philox(c, be, seed); Gradients g = new Gradients(w);
             Tensor x = be.empty("x", DType.F32, xShape); Tensor xDot = be.empty("xDot", DType.F32, xShape);
             Tensor r = be.empty("r", DType.F32, xShape); Tensor t = be.upload("t", ts, batch);
             Tensor tDot = be.upload("tDot", ones(batch), batch); Tensor y = be.upload("y", ys, batch)) {
            be.randomNormal(x, seed + 1, 0);
            be.randomNormal(xDot, seed + 2, 0);
            be.randomNormal(r, seed + 3, 0);
            LightningDiT m = new LightningDiT(w);
            setup.accept(m);
            Tensor aux = c.auxTime() ? t : null;
            float[] out;
            float[] tangent = null;
            try (Tape tape = Tape.forParameters(w, g)) {
                if (jvp) {
                    Dual d = m.jvp(x, xDot, t, tDot, y, aux, tape);
                    try (Tensor f = d.primal(); Tensor fDot = d.tangent()) {
                        out = be.download(f);
                        tangent = be.download(fDot);
                        tape.backward(f, r);
                    }
                } else {
                    try (Tensor f = m.forward(x, t, y, aux, tape)) {
                        out = be.download(f);
                        tape.backward(f, r);
                    }
                }
            }
            Map<String, float[]> grads = new TreeMap<>();
            g.asMap().forEach((k, v) -> grads.put(k, be.download(v)));
            return new TrainingPassRun(out, tangent, grads);
        }
    }

    private static float[] ones(int n) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, 1f);
        return a;
    }
}
