package facm.training;

import facm.autograd.Gradients;
import facm.autograd.Tape;
import facm.distributed.Communicator;
import facm.distributed.GradientAverage;
import facm.distributed.WorldRank;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The trainer's view of data parallelism: which slice of each global batch this rank trains on, the gradient average
 * (overlapping the last backward pass; {@code allreduce_ms} and {@code allreduce_exposed_ms} are logged), and the per-step agreement of the host
 * scalars, so that every rank takes the same decisions: the logged loss is the mean over ranks, a NaN anywhere skips
 * the step everywhere, and a stop request on any rank stops every rank after the same step. The global gradient norm
 * needs no agreement: it is computed from the averaged gradients, which NCCL (and the host star) leave bit-identical
 * on every rank.
 *
 * <p>A single process is the world of one: no communicator, every call is local.
 */
final class DataParallel {
    /** The step's agreed scalars: mean loss, stop flag, and the objective's metrics averaged over ranks. */
    record Agreement(float loss, boolean stop, Map<String, Double> metrics) {
    }

    private final Communicator comm;
    private final WorldRank world;
    private double lastAllReduceMillis;
    private double lastExposedMillis;
    private GradientAverage pendingTimes;
    /** Backward passes per step of this run's objective, learned in the first step (0: not yet known). */
    private int backwardsPerStep;

    DataParallel(Communicator comm) {
        this.comm = comm;
        this.world = comm == null ? WorldRank.single() : comm.world();
    }

    WorldRank world() {
        return world;
    }

    boolean isMaster() {
        return world.isMaster();
    }

    boolean distributed() {
        return world.distributed();
    }

    SampleSlice slice(int globalBatch) {
        return SampleSlice.ofRank(world.rank(), world.worldSize(), globalBatch);
    }

    void stepBegins() {
        if (comm != null) {
            comm.stepBegins();
        }
    }

    void stepEnds() {
        if (comm != null) {
            comm.stepEnds();
        }
    }

    /** Rank 0's trainable weights on every rank (a fresh run or a resume starts from identical replicas). */
    void broadcastWeights(ModelWeights model) {
        if (!distributed()) {
            return;
        }
        List<Tensor> params = new ArrayList<>();
        for (ParameterTable.Entry e : model.table().entries()) {
            if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                params.add(model.get(e.key()));
            }
        }
        comm.broadcast(params);
    }

    /**
     * Runs the objective's step ({@code lossAndGradients}) and leaves the gradients averaged over the ranks. The
     * average overlaps the LAST backward pass of the step: a {@link Tape.GradientListener} is attached to the tapes the
     * objective makes, and during the last backward each parameter's gradient goes to the communicator's
     * {@link GradientAverage} as soon as the tape declares it final. Which backward is the last is learned: the first
     * step of a run counts the backward passes (FM: one; FACM: the anchor's, then the JVP pass's) and averages
     * synchronously after them; later steps overlap the backward with that number. An objective that ran more
     * backward passes than it did in the first step would have added to gradients already being averaged: that is an
     * error, not a silent mismatch. Gradients the last backward never declared (parameters its tape did not track) are
     * averaged after it.
     */
    float lossAndAveragedGradients(java.util.function.Supplier<Float> objectiveStep, Gradients grads, Backend backend) {
        if (!distributed()) {
            return objectiveStep.get();
        }
        StepListener listener = new StepListener();
        float loss = Tape.withGradientListener(listener, objectiveStep);
        if (listener.average == null) {
            if (backwardsPerStep > 0) {
                throw new IllegalStateException("data-parallel step: the objective ran " + listener.backwards
                        + " backward passes, " + backwardsPerStep + " before: the last one is no longer known");
            }
            backwardsPerStep = listener.backwards;
            averageSynchronously(grads, backend);
            return loss;
        }
        if (listener.backwards != backwardsPerStep) {
            throw new IllegalStateException("data-parallel step: the objective ran " + listener.backwards
                    + " backward passes, " + backwardsPerStep + " in the first step");
        }
        List<Tensor> missed = new ArrayList<>();
        for (Tensor g : grads.asMap().values()) {
            if (!listener.declared.contains(g)) {
                missed.add(g);
            }
        }
        listener.average.finish();
        if (!missed.isEmpty()) {
            comm.average(missed);
        }
        pendingTimes = listener.average;
        return loss;
    }

    /** Counts the step's backward passes; feeds the gradient average during the last one. */
    private final class StepListener implements Tape.GradientListener {
        int backwards;
        GradientAverage average;
        final Set<Tensor> declared = Collections.newSetFromMap(new IdentityHashMap<>());

        @Override
        public boolean backwardStarts(Tape tape) {
            backwards++;
            if (backwardsPerStep > 0 && backwards > backwardsPerStep) {
                throw new IllegalStateException("data-parallel step: the objective runs backward pass "
                        + backwards + " after " + backwardsPerStep + " in the first step, whose gradients are "
                        + "already being averaged");
            }
            if (backwardsPerStep > 0 && backwards == backwardsPerStep) {
                average = comm.beginGradientAverage();
                return true;
            }
            return false;
        }

        @Override
        public void parameterDone(Tensor param, Tensor gradBuffer) {
            if (declared.add(gradBuffer)) {
                average.ready(gradBuffer);
            }
        }

        @Override
        public void backwardEnds(Tape tape) {
            average.backwardEnded();
        }
    }

    /** ZeRO-1: the gradients' mean, each rank's share only, after the backward (not overlapped; timed whole). */
    void reduceScatterGradients(ShardedAdamW sharded, Gradients grads, Backend backend) {
        backend.synchronize();
        long t0 = System.nanoTime();
        sharded.reduceGradients(grads);
        backend.synchronize();
        lastAllReduceMillis = (System.nanoTime() - t0) / 1e6;
        lastExposedMillis = lastAllReduceMillis;
        pendingTimes = null;
    }

    /** The first step (and the CPU fallback): every gradient after the backward, all of it exposed. */
    private void averageSynchronously(Gradients grads, Backend backend) {
        backend.synchronize(); // the backward is done: what follows is the exposed communication
        long t0 = System.nanoTime();
        comm.average(new ArrayList<>(grads.asMap().values()));
        backend.synchronize();
        lastAllReduceMillis = (System.nanoTime() - t0) / 1e6;
        lastExposedMillis = lastAllReduceMillis;
        pendingTimes = null;
    }

    /** Milliseconds spent all-reducing in the last step (0 in a single process); reads the step's events. */
    double lastAllReduceMillis() {
        readTimes();
        return lastAllReduceMillis;
    }

    /** Milliseconds of the last step's all-reduce the backward did not hide. */
    double lastExposedMillis() {
        readTimes();
        return lastExposedMillis;
    }

    private void readTimes() {
        if (pendingTimes != null) {
            lastAllReduceMillis = pendingTimes.allReduceMillis();
            lastExposedMillis = pendingTimes.exposedMillis();
            pendingTimes = null;
        }
    }

    /**
     * An applied step's metrics: the objective's, and in a data-parallel job the all-reduce times and every rank's
     * peak memory ({@link #peakMemoryByRank}) added.
     */
    Map<String, Double> withStepMetrics(Map<String, Double> objectiveMetrics, long peakBytes) {
        if (!distributed()) {
            return objectiveMetrics;
        }
        Map<String, Double> m = new TreeMap<>(objectiveMetrics);
        m.put("allreduce_ms", lastAllReduceMillis());
        m.put("allreduce_exposed_ms", lastExposedMillis());
        m.putAll(peakMemoryByRank(peakBytes));
        return m;
    }

    /** Agrees on the step's loss (mean), stop flag (any) and metrics (mean, keys in sorted order on every rank). */
    Agreement agree(float loss, boolean stop, Map<String, Double> metrics) {
        if (!distributed()) {
            return new Agreement(loss, stop, metrics);
        }
        TreeMap<String, Double> sorted = new TreeMap<>(metrics);
        double[] v = new double[2 + sorted.size()];
        v[0] = loss;
        v[1] = stop ? 1 : 0;
        int i = 2;
        for (double m : sorted.values()) {
            v[i++] = m;
        }
        double[] s = comm.host().sum(v);
        int w = world.worldSize();
        TreeMap<String, Double> mean = new TreeMap<>();
        i = 2;
        for (String k : sorted.keySet()) {
            mean.put(k, s[i++] / w);
        }
        return new Agreement((float) (s[0] / w), s[1] > 0, mean);
    }

    /**
     * Every rank's peak device memory of this step so far, as {@code peak_mem_gib_rank<r>} (rank 0 logs only its own
     * peak otherwise; ZeRO-1 and the buckets change what each rank holds). One small host collective.
     */
    Map<String, Double> peakMemoryByRank(long ownPeakBytes) {
        double[] v = new double[world.worldSize()];
        v[world.rank()] = ownPeakBytes / (double) (1L << 30);
        double[] all = comm.host().sum(v);
        Map<String, Double> out = new TreeMap<>();
        for (int r = 0; r < all.length; r++) {
            out.put("peak_mem_gib_rank" + r, Math.round(all[r] * 1000) / 1000.0);
        }
        return out;
    }

    /** Waits for every rank (e.g. until rank 0 has written a checkpoint). */
    void barrier() {
        if (distributed()) {
            comm.host().barrier();
        }
    }
}
