package facm.backend.cpu;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.concurrent.RecursiveAction;

/**
 * Splits an index range {@code [0, n)} into contiguous chunks and runs them on a fixed {@link ForkJoinPool}. Work
 * smaller than the grain runs inline on the calling thread, so tiny tensors never pay for a task hand-off.
 *
 * <p>Chunks are disjoint and each index is visited exactly once, so a body that writes only the elements of its own
 * chunk needs no synchronization. Exceptions thrown by a body propagate to the caller. Calls may nest (a body may
 * call {@link #forRange} again); the nested call then runs its chunks on the same pool.
 */
public final class ParallelRanges implements AutoCloseable {

    /** The work for indices {@code [start, end)}. */
    @FunctionalInterface
    public interface RangeBody {
        void run(long start, long end);
    }

    /** Chunks per thread: a few more than one, so unequal chunks even out. */
    private static final int CHUNKS_PER_THREAD = 4;

    private final int threads;
    private final ForkJoinPool pool;

    /** A pool of {@code threads} workers; with one thread everything runs inline and no pool is made. */
    public ParallelRanges(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("thread count must be >= 1, got " + threads);
        }
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads, p -> {
            ForkJoinWorkerThread t = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(p);
            t.setName("facm-cpu-" + t.getPoolIndex());
            t.setDaemon(true);
            return t;
        }, null, false);
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
        if (n <= 0) {
            return;
        }
        long g = Math.max(1, grain);
        int chunks = (int) Math.min((long) threads * CHUNKS_PER_THREAD, (n + g - 1) / g);
        if (pool == null || chunks <= 1) {
            body.run(0, n);
            return;
        }
        List<RecursiveAction> tasks = new ArrayList<>(chunks);
        for (int c = 0; c < chunks; c++) {
            long start = n * c / chunks;
            long end = n * (c + 1) / chunks;
            tasks.add(new RecursiveAction() {
                @Override
                protected void compute() {
                    body.run(start, end);
                }
            });
        }
        RecursiveAction all = new RecursiveAction() {
            @Override
            protected void compute() {
                ForkJoinTask.invokeAll(tasks);
            }
        };
        try {
            if (Thread.currentThread() instanceof ForkJoinWorkerThread w && w.getPool() == pool) {
                all.invoke();
            } else {
                pool.invoke(all);
            }
        } catch (RuntimeException e) {
            throw unwrapped(e);
        } catch (Error e) {
            throw unwrapped(e);
        }
    }

    /**
     * ForkJoin rethrows a worker's exception as a new instance of the same class wrapping the original, whose
     * message then repeats the class name. Rethrow the original (its stack shows where it failed) with the wrapper,
     * which shows the caller, attached as suppressed.
     */
    @SuppressWarnings("unchecked") // the cause has exactly e's class
    private static <T extends Throwable> T unwrapped(T e) {
        Throwable cause = e.getCause();
        if (cause != null && cause.getClass() == e.getClass()) {
            cause.addSuppressed(e);
            return (T) cause;
        }
        return e;
    }

    /** Stops the workers; later calls fail. Idempotent. */
    @Override
    public void close() {
        if (pool != null) {
            pool.shutdownNow();
        }
    }
}
