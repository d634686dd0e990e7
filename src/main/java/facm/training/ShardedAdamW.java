package facm.training;

import facm.autograd.Gradients;
import facm.distributed.Communicator;
import facm.distributed.ShardLayout;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdamW sharded ZeRO-1 style ({@code train --shard-optimizer}): each of the W ranks keeps the moments m, v of its
 * 1/W share of the flattened trainable parameters ({@link ShardLayout}), plus an F32 copy of that share of the
 * weights and of its averaged gradient. A step: reduce-scatter the gradients (mean over ranks) into the gradient
 * shard; the global gradient norm from the shards' sums of squares, summed on the host star in rank order (the same
 * value on every rank); AdamW on the shard (one fused pass: {@link TrainingOps#adamw} on flat tensors is the same
 * element-wise rule); all-gather the updated weight shards into the full model on every rank. The EMAs are not
 * sharded: every rank updates full EMA copies from the gathered weights (sampling grids and checkpoints need them
 * whole; sharding them too is the next memory step). Checkpoints hold whole moments: {@link #gathered} all-gathers
 * them (every rank takes part; rank 0 writes), so a checkpoint does not depend on W or on sharding.
 *
 * <p>Memory per rank, F32: 2·N/W (moments) + 2·N/W (weight and gradient shards) instead of 2·N moments.
 */
final class ShardedAdamW implements OptimizerMoments, AutoCloseable {
    private final AdamW.Options options;
    private final TrainingOps ops;
    private final Communicator comm;
    private final Backend backend;
    private final List<String> keys = new ArrayList<>();
    private final List<int[]> shapes = new ArrayList<>();
    private final ShardLayout layout;
    private final Tensor weights;
    private final Tensor grad;
    private final Tensor m;
    private final Tensor v;
    private final Tensor normAccumulator;
    /** Whole moments handed over by a checkpoint restore, split into the shards by {@link #finishRestore}. */
    private final Map<String, Tensor[]> restored = new LinkedHashMap<>();
    private int step;

    ShardedAdamW(ModelWeights model, AdamW.Options options, TrainingOps ops, Communicator comm) {
        this.options = options;
        this.ops = ops;
        this.comm = comm;
        this.backend = model.backend();
        List<Tensor> params = new ArrayList<>();
        for (ParameterTable.Entry e : model.table().entries()) {
            if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                keys.add(e.key());
                shapes.add(e.shape());
                params.add(model.get(e.key()));
            }
        }
        this.layout = ShardLayout.of(params, comm.world().worldSize());
        int n = Math.toIntExact(Math.max(1, layout.shardLength()));
        List<Tensor> made = new ArrayList<>();
        try {
            weights = track(made, backend.zeros(DType.F32, n));
            grad = track(made, backend.zeros(DType.F32, n));
            m = track(made, backend.zeros(DType.F32, n));
            v = track(made, backend.zeros(DType.F32, n));
            normAccumulator = track(made, backend.zeros(DType.F32, 1));
        } catch (RuntimeException ex) {
            made.forEach(Tensor::close);
            throw ex;
        }
    }

    private static Tensor track(List<Tensor> made, Tensor t) {
        made.add(t);
        return t;
    }

    ShardLayout layout() {
        return layout;
    }

    private List<Tensor> tensors(ModelWeights model) {
        List<Tensor> l = new ArrayList<>(keys.size());
        for (String k : keys) {
            l.add(model.get(k));
        }
        return l;
    }

    private List<Tensor> tensors(Gradients grads) {
        List<Tensor> l = new ArrayList<>(keys.size());
        for (String k : keys) {
            l.add(grads.get(k));
        }
        return l;
    }

    /** Takes this rank's share of the model's current weights (after the start-up broadcast or a resume). */
    void loadWeights(ModelWeights model) {
        List<Tensor> all = tensors(model);
        for (ShardLayout.Bucket b : layout.buckets()) {
            comm.copyOwnChunk(ShardLayout.tensorsOf(b, all), b.chunk(), weights, b.shardOffset());
        }
    }

    /** Reduce-scatter: this rank's share of the mean gradient. */
    void reduceGradients(Gradients grads) {
        List<Tensor> all = tensors(grads);
        for (ShardLayout.Bucket b : layout.buckets()) {
            comm.reduceScatterMean(ShardLayout.tensorsOf(b, all), b.chunk(), grad, b.shardOffset());
        }
    }

    /** √(Σ over ranks of Σ g² of each shard); the host star sums in rank order, so every rank gets the same bits. */
    double globalGradientNorm() {
        backend.fill(normAccumulator, 0f);
        ops.sumOfSquares(grad, normAccumulator);
        double local = backend.download(normAccumulator)[0];
        return Math.sqrt(comm.host().sum(new double[] {local})[0]);
    }

    /** AdamW on the shard, then every rank's updated share into the full model. */
    void update(ModelWeights model, float gradScale) {
        int next = Math.addExact(step, 1);
        ops.adamw(weights, grad, m, v, options.lr(), options.beta1(), options.beta2(), options.eps(),
                options.weightDecay(), next, gradScale);
        List<Tensor> all = tensors(model);
        for (ShardLayout.Bucket b : layout.buckets()) {
            comm.allGather(weights, b.shardOffset(), b.chunk(), ShardLayout.tensorsOf(b, all));
        }
        step = next;
    }

    @Override
    public int step() {
        return step;
    }

    /** The moments as whole tensors on every rank (all ranks must call this together); close after writing. */
    Gathered gathered() {
        Map<String, Tensor> fm = new LinkedHashMap<>();
        Map<String, Tensor> sm = new LinkedHashMap<>();
        try {
            for (int i = 0; i < keys.size(); i++) {
                fm.put(keys.get(i), backend.empty("adam.m." + keys.get(i), DType.F32, shapes.get(i)));
                sm.put(keys.get(i), backend.empty("adam.v." + keys.get(i), DType.F32, shapes.get(i)));
            }
            List<Tensor> ml = new ArrayList<>(fm.values());
            List<Tensor> vl = new ArrayList<>(sm.values());
            for (ShardLayout.Bucket b : layout.buckets()) {
                comm.allGather(m, b.shardOffset(), b.chunk(), ShardLayout.tensorsOf(b, ml));
                comm.allGather(v, b.shardOffset(), b.chunk(), ShardLayout.tensorsOf(b, vl));
            }
        } catch (RuntimeException ex) {
            fm.values().forEach(Tensor::close);
            sm.values().forEach(Tensor::close);
            throw ex;
        }
        return new Gathered(step, fm, sm);
    }

    /** Whole moments gathered for a checkpoint (restoring into it is not supported). */
    record Gathered(int step, Map<String, Tensor> firstMoments, Map<String, Tensor> secondMoments)
            implements OptimizerMoments, AutoCloseable {
        @Override
        public void restoreMoments(String key, float[] firstMoment, float[] secondMoment) {
            throw new UnsupportedOperationException("gathered moments are for writing a checkpoint");
        }

        @Override
        public void restoreStep(int savedStep) {
            throw new UnsupportedOperationException("gathered moments are for writing a checkpoint");
        }

        @Override
        public void close() {
            firstMoments.values().forEach(Tensor::close);
            secondMoments.values().forEach(Tensor::close);
        }
    }

    @Override
    public Map<String, Tensor> firstMoments() {
        throw new UnsupportedOperationException("sharded AdamW: gather the moments first (gathered())");
    }

    @Override
    public Map<String, Tensor> secondMoments() {
        throw new UnsupportedOperationException("sharded AdamW: gather the moments first (gathered())");
    }

    /** Keeps a checkpoint's whole moments of one parameter until {@link #finishRestore} takes this rank's share. */
    @Override
    public void restoreMoments(String key, float[] firstMoment, float[] secondMoment) {
        int i = keys.indexOf(key);
        if (i < 0) {
            throw new IllegalArgumentException("sharded AdamW: no moments for '" + key + "'");
        }
        Tensor[] prev = restored.put(key, new Tensor[] {backend.upload("adam.m." + key, firstMoment, shapes.get(i)),
                backend.upload("adam.v." + key, secondMoment, shapes.get(i))});
        if (prev != null) {
            prev[0].close();
            prev[1].close();
        }
    }

    /** After a restore: this rank's share of the restored moments and of the model's weights. */
    void finishRestore(ModelWeights model) {
        if (restored.size() != keys.size()) {
            throw new IllegalStateException("sharded AdamW: the checkpoint restored " + restored.size() + " of "
                    + keys.size() + " moment pairs");
        }
        List<Tensor> ml = new ArrayList<>();
        List<Tensor> vl = new ArrayList<>();
        for (String k : keys) {
            ml.add(restored.get(k)[0]);
            vl.add(restored.get(k)[1]);
        }
        for (ShardLayout.Bucket b : layout.buckets()) {
            comm.copyOwnChunk(ShardLayout.tensorsOf(b, ml), b.chunk(), m, b.shardOffset());
            comm.copyOwnChunk(ShardLayout.tensorsOf(b, vl), b.chunk(), v, b.shardOffset());
        }
        restored.values().forEach(p -> {
            p[0].close();
            p[1].close();
        });
        restored.clear();
        loadWeights(model);
    }

    @Override
    public void restoreStep(int savedStep) {
        if (savedStep < 0) {
            throw new IllegalArgumentException("AdamW: saved step " + savedStep + " is negative");
        }
        step = savedStep;
    }

    @Override
    public void close() {
        restored.values().forEach(p -> {
            p[0].close();
            p[1].close();
        });
        restored.clear();
        for (Tensor t : new Tensor[] {weights, grad, m, v, normAccumulator}) {
            t.close();
        }
    }
}
