package facm.autograd;

import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The bookkeeping behind {@link Tape.GradientListener} for one tape: while recording, the earliest entry that may
 * add to each parameter's gradient; during the backward, which parameters are final after which entry, and the check
 * that no op writes a gradient after it was declared final. Only tapes created under
 * {@link Tape#withGradientListener} have one.
 */
final class GradientFinality {
    private static final ThreadLocal<Tape.GradientListener> LISTENER = new ThreadLocal<>();

    private final Tape.GradientListener listener;
    /** Parameter → index of the earliest entry that may add to its gradient (noted while recording). */
    private final Map<Tensor, Integer> firstUse = new IdentityHashMap<>();
    /** Parameters in registration order: the same on every rank (identity hashes are not). */
    private final List<Tensor> paramOrder = new ArrayList<>();
    /** Parameters declared done in the running backward. */
    private final Set<Tensor> done = Collections.newSetFromMap(new IdentityHashMap<>());

    private GradientFinality(Tape.GradientListener listener) {
        this.listener = listener;
    }

    /** The finality tracking of a tape created now on this thread, or null without a listener. */
    static GradientFinality forNewTape() {
        Tape.GradientListener l = LISTENER.get();
        return l == null ? null : new GradientFinality(l);
    }

    /** {@link Tape#withGradientListener}. */
    static <T> T with(Tape.GradientListener listener, Supplier<T> work) {
        Tape.GradientListener before = LISTENER.get();
        LISTENER.set(listener);
        try {
            return work.get();
        } finally {
            LISTENER.set(before);
        }
    }

    Tape.GradientListener listener() {
        return listener;
    }

    void register(Tensor param) {
        paramOrder.add(param);
    }

    /** While recording: entry {@code nextEntry} (the one about to be recorded) may add to param's gradient. */
    void noteUse(Tensor param, int nextEntry) {
        firstUse.putIfAbsent(param, nextEntry);
    }

    /** During the backward: the running op must not use a parameter already declared final. */
    void requireNotDone(Tensor param, int runningEntry, String runningOp) {
        if (done.contains(param)) {
            throw new IllegalStateException("tape: op #" + runningEntry + (runningOp == null ? "" : " '" + runningOp
                    + "'") + " uses the gradient of parameter " + param.describe() + " after the tape declared it "
                    + "final (the op did not ask requiresGrad/paramGrad about it while recording)");
        }
    }

    /**
     * Parameters grouped by the entry after whose backward they are done, for a tape of {@code entries} entries; the
     * last list: done before any entry runs (parameters the tape never used).
     */
    List<List<Tensor>> byFirstUse(int entries) {
        List<List<Tensor>> l = new ArrayList<>(entries + 1);
        for (int i = 0; i <= entries; i++) {
            l.add(new ArrayList<>());
        }
        for (Tensor p : paramOrder) {
            Integer first = firstUse.get(p);
            l.get(first == null || first >= entries ? entries : first).add(p);
        }
        return l;
    }

    void declareDone(List<Tensor> params, Map<Tensor, Tensor> gradBuffers) {
        for (Tensor p : params) {
            done.add(p);
            listener.parameterDone(p, gradBuffers.get(p));
        }
    }
}
