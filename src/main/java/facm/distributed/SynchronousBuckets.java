package facm.distributed;

import facm.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * The host communicator's {@link GradientAverage}: each bucket is averaged synchronously inside the {@link #ready}
 * call that completes it, i.e. in the middle of the backward on the calling thread. Nothing overlaps on the CPU (the
 * same cores would do both), but the buckets are averaged at the moments the GPU path starts them, so the CPU tests
 * check that no gradient changes after it was declared final.
 */
final class SynchronousBuckets implements GradientAverage {
    private final Communicator comm;
    private final List<Tensor> pending = new ArrayList<>();
    private long pendingBytes;
    private long nanos;
    private long exposedNanos;

    SynchronousBuckets(Communicator comm) {
        this.comm = comm;
    }

    @Override
    public void ready(Tensor grad) {
        pending.add(grad);
        pendingBytes += grad.bytes();
        if (pendingBytes >= BUCKET_BYTES) {
            flush();
        }
    }

    private void flush() {
        if (pending.isEmpty()) {
            return;
        }
        long t0 = System.nanoTime();
        comm.average(List.copyOf(pending));
        nanos += System.nanoTime() - t0;
        pending.clear();
        pendingBytes = 0;
    }

    @Override
    public void backwardEnded() {
        long t0 = System.nanoTime();
        flush();
        exposedNanos = System.nanoTime() - t0;
    }

    @Override
    public void finish() {
        flush();
    }

    @Override
    public double allReduceMillis() {
        return nanos / 1e6;
    }

    @Override
    public double exposedMillis() {
        return exposedNanos / 1e6;
    }
}
