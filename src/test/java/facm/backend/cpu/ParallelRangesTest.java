package facm.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.atomic.AtomicIntegerArray;

import org.junit.jupiter.api.Test;

class ParallelRangesTest {

    @Test
    void everyIndexRunsExactlyOnce() {
        for (int threads : new int[] {1, 2, 5}) {
            try (ParallelRanges par = new ParallelRanges(threads)) {
                for (int n : new int[] {0, 1, 7, 1000, 100_003}) {
                    for (long grain : new long[] {1, 64, 1 << 20}) {
                        AtomicIntegerArray hits = new AtomicIntegerArray(n);
                        par.forRange(n, grain, (s, e) -> {
                            for (long i = s; i < e; i++) {
                                hits.incrementAndGet((int) i);
                            }
                        });
                        for (int i = 0; i < n; i++) {
                            assertEquals(1, hits.get(i), "threads " + threads + " n " + n + " index " + i);
                        }
                    }
                }
            }
        }
    }

    @Test
    void nestedCallsCompleteOnTheSamePool() {
        try (ParallelRanges par = new ParallelRanges(2)) {
            AtomicIntegerArray hits = new AtomicIntegerArray(64 * 64);
            par.forRange(64, 1, (s, e) -> {
                for (long r = s; r < e; r++) {
                    long row = r;
                    par.forRange(64, 1, (cs, ce) -> {
                        for (long c = cs; c < ce; c++) {
                            hits.incrementAndGet((int) (row * 64 + c));
                        }
                    });
                }
            });
            for (int i = 0; i < hits.length(); i++) {
                assertEquals(1, hits.get(i));
            }
        }
    }

    @Test
    void exceptionsReachTheCaller() {
        try (ParallelRanges par = new ParallelRanges(2)) {
            IllegalStateException boom = new IllegalStateException("boom");
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> par.forRange(1000, 1, (s, x) -> {
                if (s > 0) {
                    throw boom;
                }
            }));
            assertSame(boom, e, "the worker's own exception, not ForkJoin's copy");
        }
    }
}
