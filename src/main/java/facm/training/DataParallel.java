package facm.training;

import facm.autograd.Gradients;
import facm.distributed.Communicator;
import facm.distributed.WorldRank;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The trainer's view of data parallelism: which slice of each global batch this rank trains on, the gradient average
 * (timed: the exposed all-reduce time is logged as {@code allreduce_ms}), and the per-step agreement of the host
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
     * Replaces every gradient by its mean over ranks. The time from the end of this rank's backward to the averaged
     * gradients is the all-reduce time the backward did not hide.
     */
    void averageGradients(Gradients grads, Backend backend) {
        if (!distributed()) {
            return;
        }
        backend.synchronize(); // the backward is done: what follows is the exposed communication
        long t0 = System.nanoTime();
        comm.average(new ArrayList<>(grads.asMap().values()));
        backend.synchronize();
        lastAllReduceMillis = (System.nanoTime() - t0) / 1e6;
    }

    /** Milliseconds of the last gradient average (0 in a single process). */
    double lastAllReduceMillis() {
        return lastAllReduceMillis;
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

    /** Waits for every rank (e.g. until rank 0 has written a checkpoint). */
    void barrier() {
        if (distributed()) {
            comm.host().barrier();
        }
    }
}
