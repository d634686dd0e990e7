package facm.distributed;

import facm.tensor.Tensor;

import java.util.List;

/**
 * The collectives data-parallel training needs, over the ranks of one job. {@link facm.distributed.nccl.NcclCommunicator} is the
 * one for CUDA tensors; {@link HostCommunicator} is the CPU backend's (NCCL cannot reduce host memory). Both
 * share the rendezvous and the per-step host scalars of {@link HostStar}.
 */
public interface Communicator extends AutoCloseable {

    /** This rank's place in the job: the host star's (both implementations share its rendezvous). */
    default WorldRank world() {
        return host().world();
    }

    /** The host-side star: per-step scalars (loss, metrics, stop flag), barriers. */
    HostStar host();

    /** Replaces each F32 tensor by its mean over the ranks, the same values on every rank. */
    void average(List<Tensor> tensors);

    /**
     * A gradient average to feed during the backward ({@link GradientAverage}). The default averages each bucket
     * synchronously when it is complete (the CPU path); NCCL runs the buckets on a separate stream.
     */
    default GradientAverage beginGradientAverage() {
        return new SynchronousBuckets(this);
    }

    /**
     * ZeRO-1 ({@link ShardLayout}): the mean over ranks of the bucket's tensors, flattened and zero-padded to
     * W·chunk values; this rank's chunk r goes to {@code shard[shardOffset, shardOffset + chunk)}.
     */
    void reduceScatterMean(List<Tensor> bucket, int chunk, Tensor shard, long shardOffset);

    /** ZeRO-1: every rank r's {@code shard[shardOffset, shardOffset + chunk)} into chunk r of the bucket's tensors. */
    void allGather(Tensor shard, long shardOffset, int chunk, List<Tensor> bucket);

    /** ZeRO-1: this rank's chunk of the bucket's current values into its shard (local, no communication). */
    void copyOwnChunk(List<Tensor> bucket, int chunk, Tensor shard, long shardOffset);

    /** Overwrites each tensor with rank 0's values. */
    void broadcast(List<Tensor> tensors);

    /** A training step starts: collectives from now on should finish within the collective timeout. */
    default void stepBegins() {
    }

    /** The step's collectives are done. */
    default void stepEnds() {
    }

    /** e.g. "NCCL 2.28.3, 2 ranks" or "TCP star (CPU), 2 ranks". */
    String describe();

    @Override
    void close();
}
