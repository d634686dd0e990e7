package facm.backend.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Splits an index range {@code [0, n)} into contiguous chunks and runs them on the calling thread plus
 * {@code threads − 1} helper threads. Work smaller than the grain runs inline on the calling thread, so tiny tensors
 * never pay for a hand-off.
 *
 * <p>Chunks are disjoint and each index is visited exactly once, so a body that writes only the elements of its own
 * chunk needs no synchronization. Exceptions thrown by a body propagate to the caller (the original exception; chunks
 * not yet started are skipped). Calls may nest (a body may call {@link #forRange} again); a nested call runs inline
 * on the thread that makes it.
 *
 * <p>Why not a ForkJoinPool: the caller joins the work instead of blocking while others run, so a parallel section
 * has exactly {@code threads} running threads on a machine with that many cores (a ForkJoinPool invoked from outside
 * has its own workers, and tasks forked by a non-worker thread go to the common pool). Chunks are claimed from one
 * counter, so uneven chunks even out. Idle helpers park until the next call unparks them.
 */
public final class ParallelRanges implements AutoCloseable {

    /** The work for indices {@code [start, end)}. */
    @FunctionalInterface
    public interface RangeBody {
        void run(long start, long end);
    }

    /** Chunks per thread: a few more than one, so unequal chunks even out. */
    private static final int CHUNKS_PER_THREAD = 4;
    /** Spins of a waiting caller before it parks (the last chunks often end within microseconds). */
    private static final int SPINS_BEFORE_PARK = 1 << 10;

    /** One forRange call: its chunks are claimed from {@link #next} by the caller and the helpers. */
    private static final class Job {
        final long n;
        final int chunks;
        final RangeBody body;
        final Thread caller;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        volatile Throwable failure;

        Job(long n, int chunks, RangeBody body, Thread caller) {
            this.n = n;
            this.chunks = chunks;
            this.body = body;
            this.caller = caller;
        }

        /** Runs chunks until none is left unclaimed. */
        void work() {
            int c;
            while ((c = next.getAndIncrement()) < chunks) {
                try {
                    if (failure == null) {
                        body.run(n * c / chunks, n * (c + 1) / chunks);
                    }
                } catch (Throwable t) {
                    if (failure == null) {
                        failure = t;
                    }
                }
                if (done.incrementAndGet() == chunks) {
                    LockSupport.unpark(caller);
                }
            }
        }

        boolean finished() {
            return done.get() >= chunks;
        }
    }

    private final int threads;
    private final Thread[] helpers;
    /** Set while this thread runs a chunk or waits for its own call: a nested call then runs inline. */
    private final ThreadLocal<Boolean> busy = ThreadLocal.withInitial(() -> Boolean.FALSE);
    private volatile Job current;
    private volatile boolean closed;

    /** A caller plus {@code threads − 1} helpers; with one thread everything runs inline and no thread is made. */
    public ParallelRanges(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("thread count must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.helpers = new Thread[threads - 1];
        for (int i = 0; i < helpers.length; i++) {
            Thread t = new Thread(this::helperLoop, "facm-cpu-" + i);
            t.setDaemon(true);
            helpers[i] = t;
            t.start();
        }
    }

    public int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over {@code [0, n)}. {@code grain} is the smallest chunk worth a task (in indices): choose it
     * so that one chunk is at least some tens of microseconds of work, e.g. 1 << 15 for a cheap elementwise op, a
     * single index for a whole matrix tile.
     */
    public void forRange(long n, long grain, RangeBody body) {
        if (closed) {
            throw new IllegalStateException("ParallelRanges: used after close()");
        }
        if (n <= 0) {
            return;
        }
        long g = Math.max(1, grain);
        int chunks = (int) Math.min((long) threads * CHUNKS_PER_THREAD, (n + g - 1) / g);
        if (helpers.length == 0 || chunks <= 1 || busy.get()) {
            body.run(0, n);
            return;
        }
        Job job = new Job(n, chunks, body, Thread.currentThread());
        busy.set(Boolean.TRUE);
        try {
            current = job;
            for (Thread h : helpers) {
                LockSupport.unpark(h);
            }
            job.work();
            for (int spin = 0; !job.finished() && spin < SPINS_BEFORE_PARK; spin++) {
                Thread.onSpinWait();
            }
            while (!job.finished()) {
                LockSupport.park(this);
            }
        } finally {
            busy.set(Boolean.FALSE);
        }
        Throwable failure = job.failure;
        if (failure instanceof RuntimeException e) {
            throw e;
        }
        if (failure instanceof Error e) {
            throw e;
        }
        if (failure != null) {
            throw new IllegalStateException("ParallelRanges: a chunk failed", failure);
        }
    }

    private void helperLoop() {
        busy.set(Boolean.TRUE);
        Job last = null;
        while (!closed) {
            Job job = current;
            if (job != null && job != last && !job.finished()) {
                last = job;
                job.work();
            } else {
                // Unparked by the next call (a permit given before this park makes it return at once).
                LockSupport.park(this);
            }
        }
    }

    /** Stops the helpers; later calls fail. Idempotent. */
    @Override
    public void close() {
        closed = true;
        for (Thread h : helpers) {
            LockSupport.unpark(h);
        }
    }
}
