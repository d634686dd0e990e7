package facm.distributed;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Collectives through the host: tensors are downloaded, averaged over the {@link HostStar} (rank-ordered sum in
 * double, so 2 ranks give the same bits however the packets arrive) and written back. This is the CPU backend's path
 * only (CI tests, CPU users): it moves every gradient through rank 0's sockets and would be far too slow for GPUs,
 * which use NCCL. Tensors travel in buckets of at most {@value #BUCKET_FLOATS} floats.
 */
public final class HostCommunicator implements Communicator {
    static final int BUCKET_FLOATS = 1 << 22;

    private final HostStar star;

    public HostCommunicator(HostStar star) {
        this.star = star;
    }

    @Override
    public HostStar host() {
        return star;
    }

    @Override
    public void average(List<Tensor> tensors) {
        if (!world().distributed()) {
            return;
        }
        for (List<Tensor> bucket : buckets(tensors)) {
            float[] flat = concat(bucket);
            writeBack(bucket, star.mean(flat));
        }
    }

    @Override
    public void broadcast(List<Tensor> tensors) {
        if (!world().distributed()) {
            return;
        }
        for (List<Tensor> bucket : buckets(tensors)) {
            float[] flat = world().isMaster() ? concat(bucket) : new float[0];
            ByteBuffer b = ByteBuffer.allocate(flat.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            b.asFloatBuffer().put(flat);
            ByteBuffer got = ByteBuffer.wrap(star.broadcast(b.array())).order(ByteOrder.LITTLE_ENDIAN);
            float[] values = new float[got.remaining() / Float.BYTES];
            got.asFloatBuffer().get(values);
            writeBack(bucket, values);
        }
    }

    /** Consecutive groups of tensors of at most BUCKET_FLOATS values (a larger tensor is a bucket of its own). */
    static List<List<Tensor>> buckets(List<Tensor> tensors) {
        List<List<Tensor>> out = new ArrayList<>();
        List<Tensor> cur = new ArrayList<>();
        long n = 0;
        for (Tensor t : tensors) {
            if (t.dtype() != DType.F32) {
                throw new IllegalArgumentException("host communicator: only F32 tensors, got " + t.describe());
            }
            if (!cur.isEmpty() && n + t.numel() > BUCKET_FLOATS) {
                out.add(cur);
                cur = new ArrayList<>();
                n = 0;
            }
            cur.add(t);
            n += t.numel();
        }
        if (!cur.isEmpty()) {
            out.add(cur);
        }
        return out;
    }

    private static float[] concat(List<Tensor> bucket) {
        long total = 0;
        for (Tensor t : bucket) {
            total += t.numel();
        }
        float[] flat = new float[Math.toIntExact(total)];
        int at = 0;
        for (Tensor t : bucket) {
            float[] v = t.backend().download(t);
            System.arraycopy(v, 0, flat, at, v.length);
            at += v.length;
        }
        return flat;
    }

    private static void writeBack(List<Tensor> bucket, float[] flat) {
        int at = 0;
        for (Tensor t : bucket) {
            int n = Math.toIntExact(t.numel());
            if (at + n > flat.length) {
                throw new DistributedException("host communicator: rank 0 sent " + flat.length + " values, fewer "
                        + "than the tensors need (the ranks disagree about the model)");
            }
            float[] part = java.util.Arrays.copyOfRange(flat, at, at + n);
            Backend be = t.backend();
            try (Tensor tmp = be.upload(t.name(), part, t.shape())) {
                be.copy(tmp, t);
            }
            at += n;
        }
    }

    @Override
    public void reduceScatterMean(List<Tensor> bucket, int chunk, Tensor shard, long shardOffset) {
        float[] mean = star.mean(padded(bucket, chunk));
        int r = world().rank();
        writeRange(shard, shardOffset, java.util.Arrays.copyOfRange(mean, r * chunk, (r + 1) * chunk));
    }

    /**
     * Each rank sends its chunk in place in a zero vector; the star's sum (in double: x + 0 is exact) is the
     * gathered vector on every rank.
     */
    @Override
    public void allGather(Tensor shard, long shardOffset, int chunk, List<Tensor> bucket) {
        float[] own = shard.backend().download(shard);
        int w = world().worldSize();
        double[] mine = new double[w * chunk];
        int r = world().rank();
        for (int i = 0; i < chunk; i++) {
            mine[r * chunk + i] = own[Math.toIntExact(shardOffset + i)];
        }
        double[] all = star.sum(mine);
        float[] flat = new float[all.length];
        for (int i = 0; i < all.length; i++) {
            flat[i] = (float) all[i];
        }
        writeBack(bucket, flat);
    }

    @Override
    public void copyOwnChunk(List<Tensor> bucket, int chunk, Tensor shard, long shardOffset) {
        int r = world().rank();
        writeRange(shard, shardOffset, java.util.Arrays.copyOfRange(padded(bucket, chunk), r * chunk,
                (r + 1) * chunk));
    }

    private float[] padded(List<Tensor> bucket, int chunk) {
        float[] flat = concat(bucket);
        return java.util.Arrays.copyOf(flat, world().worldSize() * chunk);
    }

    /** shard[offset, offset + values.length) = values (through the host: this is the CPU backend's path). */
    private static void writeRange(Tensor shard, long offset, float[] values) {
        Backend be = shard.backend();
        float[] all = be.download(shard);
        System.arraycopy(values, 0, all, Math.toIntExact(offset), values.length);
        try (Tensor tmp = be.upload(shard.name(), all, shard.shape())) {
            be.copy(tmp, shard);
        }
    }

    @Override
    public String describe() {
        return "TCP star through rank 0 (CPU backend), " + world().worldSize() + " ranks";
    }

    @Override
    public void close() {
        star.close();
    }
}
