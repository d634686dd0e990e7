package facm.autograd;

import facm.model.ModelWeights;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reverse-mode autograd in the micrograd manner: each op that has a tracked input records its name and a closure that
 * pushes the gradient of its outputs back to its inputs, and {@link #backward} runs the closures newest first.
 *
 * <p>Tracking (stop-gradient): a tensor gets a gradient only when it is a registered parameter, an input marked with
 * {@link #track}, or the output of a recorded op. An op whose inputs are all untracked records nothing, and its output
 * stays untracked: that is how the model's input x, the time features and the labels get no gradient, and how a
 * frozen model (no tape at all) runs without any bookkeeping.
 *
 * <p>Gradients: parameter gradients ACCUMULATE into the caller's buffers (a {@link Gradients}); every other gradient
 * lives in this tape, keyed by tensor identity, and is freed as soon as the op that produced the tensor has pushed it
 * further back. Leaf gradients (from {@link #track}) stay readable through {@link #grad} until {@link #close()}.
 *
 * <p>Memory: tensors an op needs for its backward are handed to the tape with {@link #save}; the tape owns them from
 * then on and frees each one right after the earliest-recorded op that saved it has run its backward, so activation
 * memory shrinks while gradient memory grows during the backward pass. {@link #close()} frees whatever is left (also
 * after an exception), so use the tape with try-with-resources.
 */
public final class Tape implements AutoCloseable {

    /** Pushes the gradients of one op's outputs back to its inputs; reads them with {@link #grad}. */
    @FunctionalInterface
    public interface Backward {
        void run();
    }

    private record Entry(String op, Backward backward, Tensor[] outputs) {
    }

    /**
     * Told during a backward when a parameter's gradient gets nothing more from this tape, so data-parallel training
     * can start averaging it while the rest of the backward runs. A parameter is done once the earliest-recorded op
     * that asked about it ({@link #requiresGrad}/{@link #paramGrad} while recording) has run its backward: the
     * backward visits ops newest first, so that is the reverse order of first use. Parameters this tape never used are
     * done before the first op runs. A backward closure that writes a gradient after it was declared done is a bug
     * the tape reports (IllegalStateException naming the op and the parameter).
     */
    public interface GradientListener {
        /** This tape's backward starts; true to receive {@link #parameterDone} calls for it. */
        boolean backwardStarts(Tape tape);

        /** The ops writing {@code gradBuffer} (param's accumulation buffer) are all enqueued. */
        void parameterDone(Tensor param, Tensor gradBuffer);

        /** The backward has enqueued its last op (only when {@link #backwardStarts} returned true). */
        void backwardEnds(Tape tape);
    }

    /**
     * Runs {@code work} with {@code listener} attached to every tape created on this thread meanwhile (the trainer
     * wraps the objective's step in this; the objective needs to know nothing about it).
     */
    public static <T> T withGradientListener(GradientListener listener, java.util.function.Supplier<T> work) {
        return GradientFinality.with(listener, work);
    }

    /** The gradient-final bookkeeping, or null when no listener was attached when this tape was made. */
    private final GradientFinality finality = GradientFinality.forNewTape();
    private int runningEntry = -1;

    private final Backend backend;
    private final List<Entry> entries = new ArrayList<>();
    private final Map<Tensor, Tensor> paramGrads = new IdentityHashMap<>();
    private final Set<Tensor> tracked = Collections.newSetFromMap(new IdentityHashMap<>());
    private final Map<Tensor, Tensor> grads = new IdentityHashMap<>();
    /** Saved tensor → index of the earliest entry that may use it (the entry recorded right after the first save). */
    private final Map<Tensor, Integer> saved = new IdentityHashMap<>();
    private boolean backwardDone;
    private boolean closed;

    public Tape(Backend backend) {
        this.backend = backend;
    }

    /** A tape whose parameters are every trainable tensor of {@code weights}, accumulating into {@code grads}. */
    public static Tape forParameters(ModelWeights weights, Gradients grads) {
        Tape tape = new Tape(weights.backend());
        for (Map.Entry<String, Tensor> g : grads.asMap().entrySet()) {
            tape.trackParameter(weights.get(g.getKey()), g.getValue());
        }
        return tape;
    }

    public Backend backend() {
        return backend;
    }

    /** Registers a parameter: its gradient is accumulated (+=) into {@code gradBuffer}, which the caller owns. */
    public void trackParameter(Tensor param, Tensor gradBuffer) {
        if (!java.util.Arrays.equals(param.shape(), gradBuffer.shape()) || gradBuffer.dtype() != DType.F32) {
            throw new IllegalArgumentException("tape: gradient buffer " + gradBuffer.describe()
                    + " does not fit parameter " + param.describe());
        }
        if (paramGrads.put(param, gradBuffer) == null) {
            if (finality != null) {
                finality.register(param);
            }
        }
        tracked.add(param);
    }

    /** Marks a leaf input (not a parameter) as needing a gradient, read after {@link #backward} by {@link #grad}. */
    public <T extends Tensor> T track(T input) {
        tracked.add(input);
        return input;
    }

    /**
     * sg(t): the same values as a new tensor identity (a view) that no tape tracks, so ops on it send no gradient
     * back to t (e.g. a stop-gradient denominator, or a target built from the model's own output). The view shares
     * t's storage: t must stay open while the view is used, including by a backward that saved the view's values.
     */
    public static Tensor stopGradient(Tensor t) {
        return t.reshape(t.shape());
    }

    /** Does {@code t} need a gradient? False for null. */
    public boolean requiresGrad(Tensor t) {
        noteParameterUse(t);
        return t != null && tracked.contains(t);
    }

    /** True when any of {@code inputs} needs a gradient, i.e. when an op on them must record its backward. */
    public boolean anyRequiresGrad(Tensor... inputs) {
        boolean any = false;
        for (Tensor t : inputs) {
            any |= requiresGrad(t); // no short cut: every parameter among the inputs is noted as used (listener)
        }
        return any;
    }

    /** The caller's accumulation buffer for a registered parameter, or null when {@code t} is not a parameter. */
    public Tensor paramGrad(Tensor t) {
        noteParameterUse(t);
        return t == null ? null : paramGrads.get(t);
    }

    /** While recording: the next entry may use parameter t. During a backward: t must not be done yet. */
    private void noteParameterUse(Tensor t) {
        if (finality == null || t == null || !paramGrads.containsKey(t)) {
            return;
        }
        if (!backwardDone) {
            finality.noteUse(t, entries.size());
        } else {
            Entry e = runningEntry >= 0 && runningEntry < entries.size() ? entries.get(runningEntry) : null;
            finality.requireNotDone(t, runningEntry, e == null ? null : e.op());
        }
    }

    /**
     * Hands {@code t} to the tape for the backward of the op about to be recorded; the tape frees it (idempotently,
     * so a tensor saved by several ops is freed once, after the earliest of them has run). Returns t.
     */
    public <T extends Tensor> T save(T t) {
        requireRecording();
        saved.putIfAbsent(t, entries.size());
        return t;
    }

    /** Is {@code t} owned by this tape (saved)? Its creator must then not close it. */
    public boolean owns(Tensor t) {
        return saved.containsKey(t);
    }

    /** Records op {@code op} producing {@code outputs} (which become tracked) with its backward closure. */
    public void record(String op, Backward backward, Tensor... outputs) {
        requireRecording();
        entries.add(new Entry(op, backward, outputs.clone()));
        Collections.addAll(tracked, outputs);
    }

    /** Bytes of the tensors the tape holds for the backward (saved activations), for memory reports. */
    public long savedBytes() {
        long n = 0;
        for (Tensor t : saved.keySet()) {
            n += t.isClosed() ? 0 : t.bytes();
        }
        return n;
    }

    /** Number of recorded ops. */
    public int size() {
        return entries.size();
    }

    // ---------------------------------------------------------------- gradients

    /** The gradient accumulated for {@code t} so far (a parameter's buffer, or the tape's), or null if none arrived. */
    public Tensor grad(Tensor t) {
        Tensor p = paramGrads.get(t);
        if (p != null) {
            noteParameterUse(t);
            return p;
        }
        return grads.get(t);
    }

    /** The gradient of tracked non-parameter {@code t}, created as zeros when none has arrived yet (for += ops). */
    public Tensor gradForAccumulation(Tensor t) {
        Tensor g = grad(t);
        if (g == null) {
            g = backend.zeros(DType.F32, t.shape());
            grads.put(t, g);
        }
        return g;
    }

    /** A new F32 buffer of t's shape, for an op to OVERWRITE with a contribution to pass to {@link #adoptGrad}. */
    public Tensor newGradBuffer(Tensor t) {
        return backend.empty("grad " + t.name(), DType.F32, t.shape());
    }

    /**
     * Adds {@code contribution} to t's gradient and takes ownership of it: it becomes t's gradient when t has none
     * yet (no copy), otherwise it is added in and freed. Ignored (and freed) when t is not tracked.
     */
    public void adoptGrad(Tensor t, Tensor contribution) {
        if (!requiresGrad(t)) {
            contribution.close();
            return;
        }
        Tensor g = grad(t);
        if (g == null) {
            grads.put(t, contribution);
            return;
        }
        backend.axpby(1f, g, 1f, contribution, g);
        contribution.close();
    }

    /** Adds {@code contribution} (still the caller's) to t's gradient, copying it when t has none yet. */
    public void accumulateGrad(Tensor t, Tensor contribution) {
        if (!requiresGrad(t)) {
            return;
        }
        Tensor g = grad(t);
        if (g == null) {
            g = newGradBuffer(t);
            backend.copy(contribution, g);
            grads.put(t, g);
            return;
        }
        backend.axpby(1f, g, 1f, contribution, g);
    }

    /** Removes t's gradient from the tape and gives it to the caller (e.g. to pass it on to an input unchanged). */
    public Tensor takeGrad(Tensor t) {
        return grads.remove(t);
    }

    // ---------------------------------------------------------------- backward

    /**
     * Seeds the gradient of {@code output} with a copy of {@code gradOutput} (the caller keeps its tensor) and runs
     * every recorded backward closure, newest first. Ops whose outputs received no gradient are skipped. Runs once.
     */
    public void backward(Tensor output, Tensor gradOutput) {
        requireRecording();
        if (!output.sameShape(gradOutput)) {
            throw new IllegalArgumentException("tape.backward: gradient " + gradOutput.describe() + " does not fit "
                    + output.describe());
        }
        if (!requiresGrad(output)) {
            throw new IllegalStateException("tape.backward: " + output.describe()
                    + " was not produced by a recorded op (nothing tracked led to it)");
        }
        accumulateGrad(output, gradOutput);
        backwardDone = true;
        List<List<Tensor>> freeAfter = savedByFirstUser();
        List<List<Tensor>> doneAfter = finality != null && finality.listener().backwardStarts(this)
                ? finality.byFirstUse(entries.size()) : null;
        if (doneAfter != null) {
            finality.declareDone(doneAfter.get(entries.size()), paramGrads);
        }
        for (int i = entries.size() - 1; i >= 0; i--) {
            Entry e = entries.get(i);
            runningEntry = i;
            if (anyGrad(e.outputs())) {
                try {
                    e.backward().run();
                } catch (RuntimeException ex) {
                    throw new IllegalStateException("backward of op #" + i + " '" + e.op() + "' failed: "
                            + ex.getMessage(), ex);
                }
            }
            if (doneAfter != null) {
                finality.declareDone(doneAfter.get(i), paramGrads);
            }
            for (Tensor out : e.outputs()) {
                Tensor g = grads.remove(out);
                if (g != null) {
                    g.close();
                }
            }
            for (Tensor t : freeAfter.get(i)) {
                t.close();
                saved.remove(t);
            }
            entries.set(i, null); // the closure may hold references to large tensors
        }
        entries.clear();
        runningEntry = -1;
        if (doneAfter != null) {
            finality.listener().backwardEnds(this);
        }
    }

    private boolean anyGrad(Tensor[] outputs) {
        for (Tensor t : outputs) {
            if (grad(t) != null) {
                return true;
            }
        }
        return false;
    }

    private List<List<Tensor>> savedByFirstUser() {
        List<List<Tensor>> l = new ArrayList<>(entries.size() + 1);
        for (int i = 0; i <= entries.size(); i++) {
            l.add(new ArrayList<>());
        }
        for (Map.Entry<Tensor, Integer> s : saved.entrySet()) {
            // A tensor saved after the last record belongs to no op: free it after the first (newest) step.
            l.get(Math.min(s.getValue(), Math.max(entries.size() - 1, 0))).add(s.getKey());
        }
        return l;
    }

    private void requireRecording() {
        if (closed) {
            throw new IllegalStateException("tape is closed");
        }
        if (backwardDone) {
            throw new IllegalStateException("tape.backward already ran; record a new pass on a new tape");
        }
    }

    /** Frees every saved tensor and every gradient the tape still holds (not the parameters' buffers). */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Tensor t : saved.keySet()) {
            t.close();
        }
        saved.clear();
        for (Tensor g : grads.values()) {
            g.close();
        }
        grads.clear();
        entries.clear();
        tracked.clear();
    }
}
