package facm.distributed;

import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * How ZeRO-1 splits the flattened parameters over W ranks. The trainable tensors, in table order, are grouped into
 * buckets of consecutive tensors (about {@link GradientAverage#BUCKET_BYTES}); a bucket of n values is padded to
 * W·chunk values, chunk = ⌈n / W⌉, and rank r owns values [r·chunk, (r+1)·chunk) of each bucket. A rank's shard is
 * the concatenation of its chunks, bucket after bucket ({@link Bucket#shardOffset}); padding values hold zeros (zero
 * gradient, zero moments: AdamW leaves them zero). Every rank computes the same layout from the same model.
 */
public record ShardLayout(int worldSize, List<Bucket> buckets, long shardLength) {

    /** Tensors {@code first} ..< {@code first + count} of the list, {@code values} in all, this rank's chunk size. */
    public record Bucket(int first, int count, long values, int chunk, long shardOffset) {
    }

    public ShardLayout {
        buckets = List.copyOf(buckets);
    }

    public static ShardLayout of(List<Tensor> tensors, int worldSize) {
        long[] sizes = new long[tensors.size()];
        for (int i = 0; i < sizes.length; i++) {
            sizes[i] = tensors.get(i).numel();
        }
        return of(sizes, worldSize, GradientAverage.BUCKET_BYTES / Float.BYTES);
    }

    /** The layout of tensors of {@code sizes} values, buckets closed once they reach {@code bucketValues}. */
    static ShardLayout of(long[] sizes, int worldSize, long bucketValues) {
        if (worldSize < 1) {
            throw new IllegalArgumentException("shard layout: world size " + worldSize);
        }
        List<Bucket> out = new ArrayList<>();
        long offset = 0;
        int first = 0;
        long values = 0;
        for (int i = 0; i < sizes.length; i++) {
            values += sizes[i];
            if (values >= bucketValues || i == sizes.length - 1) {
                int chunk = Math.toIntExact((values + worldSize - 1) / worldSize);
                out.add(new Bucket(first, i + 1 - first, values, chunk, offset));
                offset += chunk;
                first = i + 1;
                values = 0;
            }
        }
        return new ShardLayout(worldSize, out, offset);
    }

    /** The bucket's tensors out of the full list the layout was made from. */
    public static List<Tensor> tensorsOf(Bucket b, List<Tensor> all) {
        return all.subList(b.first(), b.first() + b.count());
    }
}
