package facm.distributed;

import facm.tensor.Tensor;

/**
 * One step's gradient average, fed while the last backward of the step still runs: {@link #ready} hands over each
 * gradient as soon as the backward will not write it again; full buckets (about {@link #BUCKET_BYTES}, in the order
 * the gradients became final, i.e. reverse parameter order) start at once. The same sequence of buckets on every
 * rank, since every rank runs the same model code.
 */
public interface GradientAverage {
    /** Bucket size: big enough for bus bandwidth, small enough that the last bucket after the backward is short. */
    long BUCKET_BYTES = 32L << 20;

    /** {@code grad} is final for this step; averaged in place with the bucket it completes. */
    void ready(Tensor grad);

    /** The backward has enqueued its last kernel: mark that moment and start the last, partial bucket. */
    void backwardEnded();

    /** Work queued on the backend after this call sees the averaged gradients. */
    void finish();

    /** Milliseconds spent averaging this step (valid once the step's results were read on the host). */
    double allReduceMillis();

    /** Milliseconds from the end of the backward to the end of the last bucket: the part the backward did not hide. */
    double exposedMillis();
}
