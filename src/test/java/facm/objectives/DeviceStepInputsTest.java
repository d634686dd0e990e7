package facm.objectives;

import facm.autograd.Gradients;
import facm.backend.cpu.CpuBackend;
import facm.data.Batch;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Philox;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The device-side per-step inputs ({@code train --cuda-graph-step}) give the host path's losses and gradients bit for
 * bit on the CPU, for every kind, with and without guidance and a teacher, on a slice, over steps that include a jump
 * (a resume): the device step state is rewritten only when the host's step disagrees with it.
 */
class DeviceStepInputsTest {
    private static final ModelConfig TINY = Presets.get("tiny").withData(8, 4, 10);

    static ConsistencyObjective.Options options(ConsistencyObjective.Kind kind, float cfgScale, float r2t, int warmup) {
        ConsistencyObjective.Options d = ConsistencyObjective.Options.defaults(kind);
        return new ConsistencyObjective.Options(kind, d.timeSampler(), d.timeMean(), d.timeStd(), d.relaxP(), cfgScale,
                d.cfgLow(), d.cfgHigh(), d.clip(), d.normEps(), warmup, r2t);
    }

    static Batch batch(int b, long seed, int classes) {
        float[] x = new float[b * 4 * 8 * 8];
        for (int i = 0; i < x.length; i++) {
            x[i] = Philox.normal(seed, i);
        }
        int[] y = new int[b];
        for (int i = 0; i < b; i++) {
            y[i] = (int) (seed + 3L * i) % classes;
        }
        return new Batch(x, new int[] {b, 4, 8, 8}, y, b);
    }

    @Test
    void facmWithTeacherAndGuidance() {
        check(options(ConsistencyObjective.Kind.FACM, 1.75f, 0f, 0), false, true);
    }

    @Test
    void facmWithoutGuidanceFromScratch() {
        check(options(ConsistencyObjective.Kind.FACM, 1f, 0f, 0), false, false);
    }

    @Test
    void meanFlowOrdersTimesOnTheDevice() {
        check(options(ConsistencyObjective.Kind.MEANFLOW, 1.75f, 0.5f, 0), true, false);
    }

    @Test
    void scmRampReadsTheDeviceStep() {
        check(options(ConsistencyObjective.Kind.SCM, 1f, 0f, 3), false, true);
    }

    private static void check(ConsistencyObjective.Options o, boolean aux, boolean withTeacher) {
        ModelConfig cfg = TINY.withAuxTime(aux);
        try (CpuBackend be = new CpuBackend();
             ModelWeights w = ModelWeights.philox(cfg, be, 11);
             ModelWeights teacher = withTeacher ? ModelWeights.philox(cfg, be, 12) : null;
             Gradients hostGrads = new Gradients(w);
             Gradients deviceGrads = new Gradients(w);
             ConsistencyObjective host = new ConsistencyObjective(7, GemmPrecision.FP32, o, teacher);
             ConsistencyObjective device = new ConsistencyObjective(7, GemmPrecision.FP32, o, teacher)) {
            device.useDeviceInputs(true);
            for (long step : new long[] {0, 1, 2, 5, 6}) { // 2 -> 5: the state is rewritten (a resume)
                Batch batch = batch(3, step + 1, cfg.numClasses());
                hostGrads.zero();
                deviceGrads.zero();
                float expected = host.lossAndGradients(w, hostGrads, batch, step);
                float actual = device.lossAndGradients(w, deviceGrads, batch, step);
                assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(actual),
                        o.kind() + " step " + step + ": loss " + expected + " vs " + actual);
                assertEquals(host.lastMetrics(), device.lastMetrics(), o.kind() + " step " + step);
                for (Map.Entry<String, Tensor> e : hostGrads.asMap().entrySet()) {
                    assertArrayEquals(be.download(e.getValue()), be.download(deviceGrads.get(e.getKey())),
                            o.kind() + " step " + step + ": gradient " + e.getKey());
                }
            }
        }
    }

    @Test
    void sliceUsesGlobalPositions() {
        ConsistencyObjective.Options o = options(ConsistencyObjective.Kind.FACM, 1.75f, 0f, 0);
        try (CpuBackend be = new CpuBackend();
             ModelWeights w = ModelWeights.philox(TINY, be, 11);
             Gradients hostGrads = new Gradients(w);
             Gradients deviceGrads = new Gradients(w);
             ConsistencyObjective host = new ConsistencyObjective(7, GemmPrecision.FP32, o, null);
             ConsistencyObjective device = new ConsistencyObjective(7, GemmPrecision.FP32, o, null)) {
            device.useDeviceInputs(true);
            Batch batch = batch(2, 4, TINY.numClasses());
            facm.training.SampleSlice slice = new facm.training.SampleSlice(2, 2, 4);
            float expected = host.lossAndGradients(w, hostGrads, batch, 3, slice);
            float actual = device.lossAndGradients(w, deviceGrads, batch, 3, slice);
            assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(actual));
        }
    }

    @Test
    void stepStateWordsRoundTripAndAdvance() {
        try (CpuBackend be = new CpuBackend();
             Tensor state = be.upload("state", new int[TrainingOps.STEP_STATE_SIZE], TrainingOps.STEP_STATE_SIZE)) {
            long seed = 0x8000_0001_FFFF_FFFEL;
            long step = 0xFFFF_FFFFL;
            be.training().copyIn(TrainingOps.stepStateWords(seed, step), state);
            be.training().advanceStepState(state);
            assertArrayEquals(new long[] {seed, step + 1}, TrainingOps.stepStateOf(be, state));
        }
    }

    /** The draws op alone: t, r and y' equal TimeSampler's and unguidedLabels' host values. */
    @Test
    void drawsEqualTheHostSampler() {
        ConsistencyObjective.Options o = options(ConsistencyObjective.Kind.MEANFLOW, 1.75f, 0.3f, 0);
        int b = 64;
        Backend be = new CpuBackend();
        try (Tensor state = be.upload("step state", new int[TrainingOps.STEP_STATE_SIZE], TrainingOps.STEP_STATE_SIZE);
             Tensor t = be.zeros(DType.F32, b); Tensor r = be.zeros(DType.F32, b);
             Tensor coefs = be.zeros(DType.F32, b, 3); Tensor yU = be.upload("y'", new int[b], b);
             Tensor y = be.upload("y", new int[b], b)) {
            be.training().copyIn(TrainingOps.stepStateWords(5, 9), state);
            be.training().consistencyDraws(o.draws(10), state, 7, t, r, coefs, y, yU);
            TimeSampler.Draws d = new TimeSampler(o).draws(FlowMatchingObjective.stepKey(5, 9), 7, b);
            assertArrayEquals(d.t(), be.download(t));
            assertArrayEquals(d.r(), be.download(r));
            assertArrayEquals(TeacherVelocity.unguidedLabels(o, new int[b], d.t(), 10), be.downloadInts(yU));
        }
    }
}
