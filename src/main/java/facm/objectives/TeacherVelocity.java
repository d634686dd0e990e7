package facm.objectives;

import facm.model.LightningDiT;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

/**
 * The velocity v that both stage-2 losses aim at (facm-spec.md §5.2b), computed without gradient. With guidance
 * (w = cfgScale &gt; 1): y' = the null class where cfgLow ≤ t ≤ cfgHigh, else y (guidance off outside the interval);
 * v = v_u + w·(v_c − v_u) with v_u = F(x_t, t, y'), and v_c = F_teacher(x_t, t, y) when distilling, else the ground
 * truth u (then v_u comes from the current student, no gradient, as the reference does). Without guidance v = v_c.
 * The teacher is queried at time t (its "first half" domain), on all channels; a model with the auxiliary time
 * embedder gets r = t there.
 */
final class TeacherVelocity {
    private TeacherVelocity() {
    }

    /** v {@code [B,C,H,W]}, the caller's to close; hostLabels are y's values (no device read on the hot path). */
    static Tensor velocity(ConsistencyObjective.Options o, LightningDiT student, LightningDiT teacher, Tensor xt,
                           Tensor u, float[] t, Tensor tT, Tensor y, int[] hostLabels) {
        if (o.cfgScale() <= 1f) {
            return velocity(o, student, teacher, xt, u, tT, y, null);
        }
        LightningDiT unguidedModel = teacher != null ? teacher : student;
        try (Tensor yUnguided = xt.backend().upload("y'", unguidedLabels(o, hostLabels, t,
                unguidedModel.config().numClasses()), t.length)) {
            return velocity(o, student, teacher, xt, u, tT, y, yUnguided);
        }
    }

    /**
     * As above with y' already made ({@link #unguidedLabels}, or on the device by
     * {@link facm.tensor.TrainingOps#consistencyDraws}); yUnguided is ignored (may be null) without guidance.
     */
    static Tensor velocity(ConsistencyObjective.Options o, LightningDiT student, LightningDiT teacher, Tensor xt,
                           Tensor u, Tensor tT, Tensor y, Tensor yUnguided) {
        Backend be = xt.backend();
        Tensor v = be.empty("v", DType.F32, xt.shape());
        try {
            if (o.cfgScale() <= 1f) {
                if (teacher == null) {
                    be.copy(u, v);
                } else {
                    try (Tensor vc = teacher.forward(xt, tT, y, teacher.config().auxTime() ? tT : null)) {
                        be.copy(vc, v);
                    }
                }
                return v;
            }
            LightningDiT unguidedModel = teacher != null ? teacher : student;
            try (Tensor vu = unguidedModel.forward(xt, tT, yUnguided, unguidedModel.config().auxTime() ? tT : null)) {
                if (teacher == null) {
                    be.axpby(o.cfgScale(), u, 1f - o.cfgScale(), vu, v);
                } else {
                    try (Tensor vc = teacher.forward(xt, tT, y, teacher.config().auxTime() ? tT : null)) {
                        be.axpby(o.cfgScale(), vc, 1f - o.cfgScale(), vu, v);
                    }
                }
            }
            return v;
        } catch (RuntimeException e) {
            v.close();
            throw e;
        }
    }

    /** y' of §5.2b: the null class inside the guidance interval, the sample's own label outside it. */
    static int[] unguidedLabels(ConsistencyObjective.Options o, int[] y, float[] t, int nullClass) {
        int[] out = y.clone();
        facm.tensor.ConsistencyDraws formulas = o.draws(nullClass);
        for (int i = 0; i < y.length; i++) {
            out[i] = formulas.unguidedLabel(y[i], t[i]);
        }
        return out;
    }
}
