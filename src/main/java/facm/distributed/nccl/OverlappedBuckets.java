package facm.distributed.nccl;

import facm.backend.cuda.CudaBackend;
import facm.backend.cuda.CudaTensor;
import facm.cuda.CudaEvent;
import facm.cuda.CudaStream;
import facm.distributed.GradientAverage;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * NCCL's {@link GradientAverage}: each full bucket is one NCCL group of in-place ncclAvg all-reduces on the
 * communication stream, queued behind an event recorded on the compute stream at the moment the bucket's last
 * gradient became final; the backward's later kernels keep running on the compute stream meanwhile. {@link #finish}
 * makes the compute stream wait for the communication stream, so the gradient norm and the optimizer read the averaged
 * values without any host synchronization.
 *
 * <p>Timing with CUDA events: each bucket's start (after its wait) and end on the communication stream give
 * allreduce_ms (their sum); an event on the compute stream right after the last backward kernel and the last bucket's
 * end give allreduce_exposed_ms. The events are read lazily, after the step's host reads have waited for them. The
 * event pool is reused from step to step (one object per step and communicator; steps do not overlap).
 */
final class OverlappedBuckets implements GradientAverage {
    private final NcclLibrary nccl;
    private final MemorySegment comm;
    private final CudaBackend backend;
    private final CudaStream compute;
    private final CudaStream commStream;
    private final List<CudaEvent> pool;
    private int used;
    private final List<CudaEvent[]> buckets = new ArrayList<>();
    private final List<CudaTensor> pending = new ArrayList<>();
    private long pendingBytes;
    private CudaEvent backwardEnd;
    private CudaEvent lastEnd;

    OverlappedBuckets(NcclLibrary nccl, MemorySegment comm, CudaBackend backend, CudaStream commStream,
                      List<CudaEvent> pool) {
        this.nccl = nccl;
        this.comm = comm;
        this.backend = backend;
        this.compute = backend.cudaDevice().stream();
        this.commStream = commStream;
        this.pool = pool;
    }

    private CudaEvent event() {
        if (used == pool.size()) {
            pool.add(CudaEvent.create(backend.cudaDevice()));
        }
        return pool.get(used++);
    }

    @Override
    public void ready(Tensor grad) {
        CudaTensor c = backend.require("gradient average", grad);
        if (c.dtype() != DType.F32) {
            throw new IllegalArgumentException("gradient average: only F32 gradients, got " + grad.describe());
        }
        pending.add(c);
        pendingBytes += c.bytes();
        if (pendingBytes >= BUCKET_BYTES) {
            launch();
        }
    }

    /** The pending bucket on the communication stream, after everything queued so far on the compute stream. */
    private void launch() {
        if (pending.isEmpty()) {
            return;
        }
        backend.cudaDevice().makeCurrent();
        CudaEvent gradientsFinal = event();
        gradientsFinal.record(compute);
        commStream.waitFor(gradientsFinal);
        CudaEvent start = event();
        start.record(commStream);
        long stream = commStream.address();
        nccl.groupStart();
        try {
            for (CudaTensor c : pending) {
                nccl.allReduce(c.address(), c.address(), c.numel(), NcclLibrary.NCCL_AVG, comm, stream);
            }
        } finally {
            nccl.groupEnd();
        }
        CudaEvent end = event();
        end.record(commStream);
        buckets.add(new CudaEvent[] {start, end});
        lastEnd = end;
        pending.clear();
        pendingBytes = 0;
    }

    @Override
    public void backwardEnded() {
        backwardEnd = event();
        backwardEnd.record(compute);
        launch();
    }

    @Override
    public void finish() {
        launch();
        CudaEvent done = event();
        done.record(commStream);
        compute.waitFor(done);
    }

    @Override
    public double allReduceMillis() {
        double ms = 0;
        for (CudaEvent[] b : buckets) {
            ms += b[1].elapsedMillisSince(b[0]);
        }
        return ms;
    }

    @Override
    public double exposedMillis() {
        if (lastEnd == null || backwardEnd == null) {
            return 0;
        }
        return Math.max(0, lastEnd.elapsedMillisSince(backwardEnd));
    }
}
