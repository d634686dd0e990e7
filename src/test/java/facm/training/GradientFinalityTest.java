package facm.training;

import facm.autograd.Gradients;
import facm.autograd.Tape;
import facm.backend.cpu.CpuBackend;
import facm.data.Batch;
import facm.model.ModelWeights;
import facm.objectives.ConsistencyObjective;
import facm.objectives.FlowMatchingObjective;
import facm.tensor.Backend;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The tape's gradient-final hook on the real objectives (the data-parallel overlap relies on it): every parameter is
 * declared once per backward, and a declared gradient does not change for the rest of that backward (so averaging it
 * from then on is sound). FACM runs two backward passes per step (FM anchor, then the JVP pass); FM runs one.
 */
class GradientFinalityTest {
    private final Backend be = new CpuBackend(2);

    /** Snapshots each gradient when declared and compares it with its value when the backward ends. */
    private static final class Checker implements Tape.GradientListener {
        final Map<Tensor, float[]> atDeclare = new IdentityHashMap<>();
        final List<Integer> declaredPerBackward = new ArrayList<>();
        final List<Tensor> order = new ArrayList<>();

        @Override
        public boolean backwardStarts(Tape tape) {
            atDeclare.clear();
            order.clear();
            return true;
        }

        @Override
        public void parameterDone(Tensor param, Tensor gradBuffer) {
            if (atDeclare.put(gradBuffer, gradBuffer.backend().download(gradBuffer)) != null) {
                throw new AssertionError(param.describe() + " declared twice");
            }
            order.add(gradBuffer);
        }

        @Override
        public void backwardEnds(Tape tape) {
            for (Tensor g : order) {
                assertArrayEquals(atDeclare.get(g), g.backend().download(g), g.describe()
                        + " changed after it was declared final");
            }
            declaredPerBackward.add(order.size());
        }
    }

    private void check(Objective objective, int expectedBackwards) {
        try (ModelWeights w = TrainingTestModels.weights(be, 5); Gradients grads = new Gradients(w)) {
            Batch batch = new FakeBatches(w.config(), 3, 9, 0).next();
            Checker checker = new Checker();
            for (long step = 0; step < 2; step++) {
                long s = step;
                grads.zero();
                Tape.withGradientListener(checker, () -> objective.lossAndGradients(w, grads, batch, s));
            }
            assertEquals(2 * expectedBackwards, checker.declaredPerBackward.size(), "backward passes in 2 steps");
            for (int n : checker.declaredPerBackward) {
                assertEquals(grads.asMap().size(), n, "every parameter declared once per backward");
            }
        }
    }

    @Test
    void flowMatchingDeclaresEveryGradientOnceAndNeverWritesItAfterwards() {
        try (Objective fm = new FlowMatchingObjective(4, GemmPrecision.FP32,
                FlowMatchingObjective.Options.defaults())) {
            check(fm, 1);
        }
    }

    @Test
    void facmAnchorAndJvpBackwardsDeclareEveryGradientOnceAndNeverWriteItAfterwards() {
        try (ModelWeights teacher = TrainingTestModels.weights(be, 77);
             Objective facm = new ConsistencyObjective(4, GemmPrecision.FP32,
                     ConsistencyObjective.Options.defaults(ConsistencyObjective.Kind.FACM), teacher)) {
            check(facm, 2);
        }
    }
}
