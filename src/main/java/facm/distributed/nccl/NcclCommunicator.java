package facm.distributed.nccl;

import facm.backend.cuda.CudaBackend;
import facm.backend.cuda.CudaTensor;
import facm.cuda.CudaEvent;
import facm.cuda.CudaStream;
import facm.distributed.Communicator;
import facm.distributed.GradientAverage;
import facm.distributed.DistributedException;
import facm.distributed.HostStar;
import facm.distributed.WorldRank;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * NCCL collectives on CUDA tensors, one communicator per process (one GPU per rank). Rank 0 makes the unique id,
 * {@link HostStar} carries it to every rank at the rendezvous, and every rank calls ncclCommInitRank on its device.
 *
 * <p>Gradients are averaged with ncclAvg in buckets of about {@value #BUCKET_BYTES} bytes: one NCCL group per bucket,
 * enqueued on the compute stream, so the reduction starts as soon as the backward's kernels before it are done and
 * nothing is read on the host.
 *
 * <p>Failure handling: a watchdog thread polls ncclCommGetAsyncError (a peer that died shows as ncclRemoteError or a
 * system error) and watches the step deadline set by {@link #stepBegins} (a peer that hangs inside a collective never
 * returns an error, only time). Either way it prints one line naming this rank and the cause, aborts the communicator
 * (which unblocks the GPU and the main thread) and ends the process with exit code 3, so the launcher stops the job.
 */
public final class NcclCommunicator implements Communicator {
    static final long BUCKET_BYTES = 32L << 20;
    private static final long POLL_MILLIS = 500;
    /** Exit code of a worker stopped by the watchdog. */
    public static final int WATCHDOG_EXIT = 3;

    private final NcclLibrary nccl;
    private final HostStar star;
    private final CudaBackend backend;
    private final MemorySegment comm;
    private final Duration collectiveTimeout;
    private final PrintStream console;
    private final Thread watchdog;
    /** The stream the overlapped gradient buckets run on (made on first use), and its reusable events. */
    private CudaStream commStream;
    private final List<CudaEvent> eventPool = new ArrayList<>();
    private volatile long stepDeadline = Long.MAX_VALUE;
    private volatile boolean closed;

    private NcclCommunicator(NcclLibrary nccl, HostStar star, CudaBackend backend, MemorySegment comm,
                             Duration collectiveTimeout, PrintStream console) {
        this.nccl = nccl;
        this.star = star;
        this.backend = backend;
        this.comm = comm;
        this.collectiveTimeout = collectiveTimeout;
        this.console = console;
        this.watchdog = Thread.ofPlatform().daemon().name("facm-nccl-watchdog").unstarted(this::watch);
        watchdog.start();
    }

    /**
     * Rendezvous (rank 0 creates and sends the unique id) and communicator creation on {@code backend}'s device.
     * The star stays open: it carries the per-step scalars and is this rank's link to rank 0.
     */
    public static NcclCommunicator connect(WorldRank world, CudaBackend backend, Duration rendezvousTimeout,
                                           Duration collectiveTimeout, PrintStream console) {
        NcclLibrary nccl = NcclLibrary.load();
        backend.cudaDevice().makeCurrent();
        HostStar star = HostStar.connect(world, rendezvousTimeout, collectiveTimeout,
                () -> world.distributed() ? nccl.uniqueId() : new byte[0]);
        try {
            MemorySegment comm = world.distributed()
                    ? nccl.commInitRank(world.worldSize(), star.payload(), world.rank()) : MemorySegment.NULL;
            return new NcclCommunicator(nccl, star, backend, comm, collectiveTimeout, console);
        } catch (RuntimeException e) {
            star.close();
            throw new DistributedException("rank " + world.rank() + ": NCCL communicator on "
                    + backend.cudaDevice().name() + " (device " + backend.cudaDevice().ordinal() + "): "
                    + e.getMessage(), e);
        }
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
        enqueue(tensors, true);
    }

    /** Buckets on a separate stream, overlapping the rest of the backward ({@link OverlappedBuckets}). */
    @Override
    public GradientAverage beginGradientAverage() {
        requireOpen();
        if (commStream == null) {
            commStream = backend.cudaDevice().newStream();
        }
        return new OverlappedBuckets(nccl, comm, backend, commStream, eventPool);
    }

    private ShardCollectives shards() {
        requireOpen();
        return new ShardCollectives(nccl, comm, backend, world().rank(), world().worldSize());
    }

    @Override
    public void reduceScatterMean(List<Tensor> bucket, int chunk, Tensor shard, long shardOffset) {
        shards().reduceScatterMean(bucket, chunk, shard, shardOffset);
    }

    @Override
    public void allGather(Tensor shard, long shardOffset, int chunk, List<Tensor> bucket) {
        shards().allGather(shard, shardOffset, chunk, bucket);
    }

    @Override
    public void copyOwnChunk(List<Tensor> bucket, int chunk, Tensor shard, long shardOffset) {
        shards().copyOwnChunk(bucket, chunk, shard, shardOffset);
    }

    @Override
    public void broadcast(List<Tensor> tensors) {
        if (!world().distributed()) {
            return;
        }
        enqueue(tensors, false);
        backend.synchronize();
        checkAsync("broadcast");
    }

    /** One NCCL group per bucket of consecutive tensors, on the compute stream (in place). */
    private void enqueue(List<Tensor> tensors, boolean average) {
        requireOpen();
        backend.cudaDevice().makeCurrent();
        long stream = backend.cudaDevice().stream().address();
        long inBucket = 0;
        boolean open = false;
        try {
            for (Tensor t : tensors) {
                CudaTensor c = backend.require(average ? "nccl average" : "nccl broadcast", t);
                if (c.dtype() != DType.F32) {
                    throw new IllegalArgumentException("nccl: only F32 tensors, got " + t.describe());
                }
                if (!open) {
                    nccl.groupStart();
                    open = true;
                }
                if (average) {
                    nccl.allReduce(c.address(), c.address(), c.numel(), NcclLibrary.NCCL_AVG, comm, stream);
                } else {
                    nccl.broadcast(c.address(), c.address(), c.numel(), 0, comm, stream);
                }
                inBucket += c.bytes();
                if (inBucket >= BUCKET_BYTES) {
                    open = false;
                    nccl.groupEnd();
                    inBucket = 0;
                }
            }
        } finally {
            if (open) {
                nccl.groupEnd();
            }
        }
    }

    @Override
    public void stepBegins() {
        stepDeadline = System.nanoTime() + collectiveTimeout.toNanos();
    }

    @Override
    public void stepEnds() {
        stepDeadline = Long.MAX_VALUE;
    }

    private void checkAsync(String what) {
        int err = nccl.asyncError(comm);
        if (err != 0 && err != NcclLibrary.NCCL_IN_PROGRESS) {
            throw new DistributedException(what + " on rank " + world().rank() + ": NCCL reports "
                    + NcclLibrary.errorName(err) + " (" + nccl.errorString(err) + ")");
        }
    }

    private void watch() {
        while (!closed) {
            try {
                Thread.sleep(POLL_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
            if (closed || !world().distributed()) {
                return;
            }
            String why = null;
            int err = nccl.asyncError(comm);
            if (err != 0 && err != NcclLibrary.NCCL_IN_PROGRESS) {
                why = "NCCL reports " + NcclLibrary.errorName(err) + " (" + nccl.errorString(err) + "): a peer died "
                        + "or the network failed";
            } else if (System.nanoTime() > stepDeadline) {
                why = "a training step did not finish within " + collectiveTimeout.toSeconds() + " s (a peer hangs "
                        + "in a collective; --collective-timeout raises the limit)";
            }
            if (why != null && !closed) {
                console.println("rank " + world().rank() + ": " + why + "; aborting the NCCL communicator and exiting");
                console.flush();
                nccl.abort(comm);
                Runtime.getRuntime().halt(WATCHDOG_EXIT);
            }
        }
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("NCCL communicator of " + world() + " is closed");
        }
    }

    @Override
    public String describe() {
        return "NCCL " + NcclLibrary.versionString(nccl.version()) + " (" + nccl.path() + "), " + world().worldSize()
                + " ranks, NVLS off";
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        watchdog.interrupt();
        try {
            if (world().distributed()) {
                backend.cudaDevice().makeCurrent();
                if (commStream != null) {
                    commStream.synchronize();
                }
                nccl.destroy(comm);
            }
            eventPool.forEach(CudaEvent::close);
            if (commStream != null) {
                commStream.close();
            }
        } finally {
            star.close();
        }
    }
}
