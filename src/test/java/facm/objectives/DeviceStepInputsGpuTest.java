package facm.objectives;

import facm.autograd.Gradients;
import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.data.Batch;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * kernels/step_inputs.cu against the CPU reference (TrainingOps' defaults): times, coefficients, y', noise and x_t
 * (the fp64 exp/atan/log/cos/pow of the device library are within an ulp or two of Java's, so the floats agree but
 * for rare 1-ulp ties), the device step state advancing by one per step, and a consistency step on the device inputs
 * giving the host-input loss on the same GPU.
 */
@Tag("gpu")
class DeviceStepInputsGpuTest {
    private static final ModelConfig TINY = Presets.get("tiny").withData(8, 4, 10);

    @Test
    void drawsAndNoiseMatchTheCpuReference() {
        CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        for (ConsistencyObjective.Kind kind : ConsistencyObjective.Kind.values()) {
            ConsistencyObjective.Options o = DeviceStepInputsTest.options(kind, 1.75f, 0.3f, 7);
            Batch batch = DeviceStepInputsTest.batch(37, 3, 10);
            Inputs cpu = inputs(new CpuBackend(), o, batch);
            Inputs cuda = inputs(gpu, o, batch);
            String what = kind + ": ";
            assertClose(what + "t", cpu.t, cuda.t);
            assertClose(what + "coefs", cpu.coefs, cuda.coefs);
            if (cpu.r != null) {
                assertClose(what + "r", cpu.r, cuda.r);
            }
            assertArrayEquals(cpu.yUnguided, cuda.yUnguided, what + "y'");
            assertClose(what + "eps", cpu.eps, cuda.eps);
            assertClose(what + "u", cpu.u, cuda.u);
            assertClose(what + "x_t", cpu.xt, cuda.xt);
            assertArrayEquals(new long[] {5, 10}, cuda.state, what + "the state advanced from step 9 to 10");
        }
    }

    @Test
    void deviceInputStepsGiveTheHostInputLossOnTheGpu() {
        CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
        ConsistencyObjective.Options o = DeviceStepInputsTest.options(ConsistencyObjective.Kind.FACM, 1.75f, 0f, 0);
        try (ModelWeights w = ModelWeights.philox(TINY, gpu, 11);
             ModelWeights teacher = ModelWeights.philox(TINY, gpu, 12);
             Gradients g = new Gradients(w);
             ConsistencyObjective host = new ConsistencyObjective(7, GemmPrecision.FP32, o, teacher);
             ConsistencyObjective device = new ConsistencyObjective(7, GemmPrecision.FP32, o, teacher)) {
            device.useDeviceInputs(true);
            for (long step = 0; step < 3; step++) {
                Batch batch = DeviceStepInputsTest.batch(4, step + 1, 10);
                g.zero();
                float expected = host.lossAndGradients(w, g, batch, step);
                g.zero();
                float actual = device.lossAndGradients(w, g, batch, step);
                assertEquals(expected, actual, 1e-5 * Math.abs(expected), "step " + step);
            }
        }
    }

    private record Inputs(float[] t, float[] r, float[] coefs, int[] yUnguided, float[] eps, float[] u, float[] xt,
                          long[] state) {
    }

    private static Inputs inputs(Backend be, ConsistencyObjective.Options o, Batch batch) {
        int b = batch.size();
        boolean mf = o.kind() == ConsistencyObjective.Kind.MEANFLOW;
        TrainingOps ops = be.training();
        try (Tensor state = be.upload("state", TrainingOps.stepStateWords(5, 9), TrainingOps.STEP_STATE_SIZE);
             Tensor x1 = be.upload("x1", batch.images(), batch.shape());
             Tensor y = be.upload("y", batch.labels(), b);
             Tensor t = be.zeros(DType.F32, b);
             Tensor r = mf ? be.zeros(DType.F32, b) : null;
             Tensor coefs = be.zeros(DType.F32, b, 3);
             Tensor yU = be.upload("y'", new int[b], b);
             Tensor eps = be.empty("eps", DType.F32, batch.shape());
             Tensor u = be.empty("u", DType.F32, batch.shape());
             Tensor xt = be.empty("xt", DType.F32, batch.shape())) {
            ops.consistencyDraws(o.draws(10), state, 3, t, r, coefs, y, yU);
            ops.consistencyNoise(state, FlowMatchingObjective.noiseOffset(eps, 3), x1, t, eps, u, xt);
            ops.advanceStepState(state);
            return new Inputs(be.download(t), mf ? be.download(r) : null, be.download(coefs), be.downloadInts(yU),
                    be.download(eps), be.download(u), be.download(xt), TrainingOps.stepStateOf(be, state));
        }
    }

    /** Equal but for an ulp or two of the fp64 library differences (relative 1e-6 of the largest magnitude). */
    private static void assertClose(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what);
        float max = 0;
        for (float v : expected) {
            max = Math.max(max, Math.abs(v));
        }
        for (int i = 0; i < expected.length; i++) {
            assertTrue(Math.abs(expected[i] - actual[i]) <= 1e-6f * Math.max(max, 1f),
                    what + "[" + i + "]: " + expected[i] + " vs " + actual[i]);
        }
    }
}
