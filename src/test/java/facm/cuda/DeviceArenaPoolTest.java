package facm.cuda;

import jcuda.driver.CUresult;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The arena's bookkeeping for graph pools, on a stand-in for the driver (no GPU needed): which allocations reach the
 * driver, where freed blocks go, what is refused while a thread captures, and what closing a pool gives back.
 */
class DeviceArenaPoolTest {
    private static final long KIB = 1024;

    /** Counts driver calls; hands out distinct pointer objects (their addresses are not used). */
    private static final class CountingDriver implements DriverMemory {
        int allocations;
        int frees;
        int synchronizes;

        @Override
        public int allocate(DevicePointer p, long bytes) {
            allocations++;
            return CUresult.CUDA_SUCCESS;
        }

        @Override
        public int free(DevicePointer p) {
            frees++;
            return CUresult.CUDA_SUCCESS;
        }

        @Override
        public void synchronize() {
            synchronizes++;
        }

        @Override
        public long[] memoryInfo() {
            return new long[] {0, 0};
        }
    }

    private final CountingDriver driver = new CountingDriver();
    private final DeviceArena arena = new DeviceArena(driver, "test device");

    @AfterEach
    void leaveNoCapture() {
        CaptureState.exit();
    }

    private DevicePointer pointerOf(DeviceBuffer b) {
        return b.pointer();
    }

    @Test
    void freedBlocksAreReusedWithoutTheDriver() {
        DeviceBuffer a = arena.allocate(3 * KIB, "a");
        DevicePointer p = pointerOf(a);
        a.close();
        DeviceBuffer b = arena.allocate(3 * KIB - 100, "b"); // same 512-byte size class
        assertSame(p, pointerOf(b));
        assertEquals(1, driver.allocations);
        assertEquals(3 * KIB, arena.stats().inUseBytes());
        assertEquals(0, arena.stats().poolBytes());
    }

    @Test
    void poolBlocksStayInThePoolAndOthersDoNotGetThem() {
        GraphMemoryPool pool = arena.newPool("g");
        DevicePointer inPool;
        try (DeviceArena.PoolScope s = arena.usePool(pool)) {
            DeviceBuffer x = arena.allocate(8 * KIB, "x");
            inPool = pointerOf(x);
            x.close();
            DeviceBuffer again = arena.allocate(8 * KIB, "again");
            assertSame(inPool, pointerOf(again), "inside the pool, a freed block is reused");
            again.close();
        }
        assertEquals(8 * KIB, pool.freeBytes());
        assertEquals(8 * KIB, arena.stats().inUseBytes(), "a pool's free blocks count as in use");
        assertEquals(8 * KIB, arena.stats().poolBytes());
        DeviceBuffer outside = arena.allocate(8 * KIB, "outside");
        assertNotSame(inPool, pointerOf(outside), "outside the pool, its blocks are not handed out");
        assertEquals(2, driver.allocations);
        outside.close();
    }

    @Test
    void poolTakesFromTheCacheBeforeTheDriver() {
        DeviceBuffer cachedBlock = arena.allocate(64 * KIB, "c");
        DevicePointer p = pointerOf(cachedBlock);
        cachedBlock.close();
        GraphMemoryPool pool = arena.newPool("g");
        try (DeviceArena.PoolScope s = arena.usePool(pool)) {
            DeviceBuffer x = arena.allocate(64 * KIB, "x");
            assertSame(p, pointerOf(x));
            x.close();
        }
        assertEquals(1, driver.allocations);
        assertEquals(0, arena.stats().cachedBytes());
        assertEquals(64 * KIB, pool.heldBytes());
    }

    @Test
    void blocksFreedInsideAPoolRegionAreAdoptedByThePool() {
        DeviceBuffer before = arena.allocate(4 * KIB, "allocated before the region");
        GraphMemoryPool pool = arena.newPool("g");
        try (DeviceArena.PoolScope s = arena.usePool(pool)) {
            before.close();
        }
        assertEquals(0, arena.stats().cachedBytes(), "a captured region may still use it: not back in the cache");
        assertEquals(4 * KIB, pool.freeBytes());
        pool.close();
        assertEquals(4 * KIB, arena.stats().cachedBytes());
        assertEquals(0, arena.stats().inUseBytes());
    }

    @Test
    void capturingNeverCallsTheDriver() {
        GraphMemoryPool pool = arena.newPool("g");
        try (DeviceArena.PoolScope s = arena.usePool(pool)) {
            arena.allocate(2 * KIB, "warm-up").close();
            CaptureState.enter("g");
            DeviceBuffer hit = arena.allocate(2 * KIB, "hit");
            CudaException miss = assertThrows(CudaException.class, () -> arena.allocate((1 << 20) + 5, "big"));
            assertTrue(miss.getMessage().startsWith("not capturable: allocation of"), miss.getMessage());
            assertTrue(miss.getMessage().contains("'big'") && miss.getMessage().contains("'g'"), miss.getMessage());
            hit.close();
            CaptureState.exit();
        }
        assertEquals(1, driver.allocations);
    }

    @Test
    void capturingRefusesAllocationsOutsideAPoolAndTrim() {
        CaptureState.enter("g");
        CudaException e = assertThrows(CudaException.class, () -> arena.allocate(KIB, "stray"));
        assertTrue(e.getMessage().startsWith("not capturable: allocation of 1.0 KiB for 'stray' outside a graph pool"),
                e.getMessage());
        CudaException t = assertThrows(CudaException.class, arena::trim);
        assertTrue(t.getMessage().startsWith("not capturable: DeviceArena.trim"), t.getMessage());
        assertEquals(0, driver.allocations);
        assertEquals(0, driver.synchronizes);
    }

    @Test
    void closingThePoolGivesItsBlocksBackAndHeldBlocksFollowLater() {
        GraphMemoryPool pool = arena.newPool("g");
        DeviceBuffer output;
        try (DeviceArena.PoolScope s = arena.usePool(pool)) {
            arena.allocate(16 * KIB, "temporary").close();
            output = arena.allocate(32 * KIB, "static output");
        }
        assertEquals(48 * KIB, pool.heldBytes());
        assertEquals(48 * KIB, arena.stats().poolBytes());
        pool.close();
        assertTrue(pool.isReleased());
        assertEquals(0, arena.stats().poolBytes());
        assertEquals(16 * KIB, arena.stats().cachedBytes());
        assertEquals(32 * KIB, arena.stats().inUseBytes(), "the output is still held by its tensor");
        output.close();
        assertEquals(0, arena.stats().inUseBytes());
        assertEquals(48 * KIB, arena.stats().cachedBytes());
        assertEquals(48 * KIB, arena.stats().peakInUseBytes());
        GraphMemoryPool closed = pool;
        assertThrows(IllegalStateException.class, () -> arena.usePool(closed));
    }

    @Test
    void poolsDoNotNestAndBelongToOneArena() {
        GraphMemoryPool a = arena.newPool("a");
        GraphMemoryPool b = arena.newPool("b");
        try (DeviceArena.PoolScope s = arena.usePool(a)) {
            assertSame(a, arena.activePool());
            assertThrows(IllegalStateException.class, () -> arena.usePool(b));
        }
        assertEquals(null, arena.activePool());
        DeviceArena other = new DeviceArena(new CountingDriver(), "other");
        assertThrows(IllegalArgumentException.class, () -> other.usePool(a));
    }

    @Test
    void syncCheckIsOffWhileCapturingAndCaptureErrorsSaySo() {
        boolean was = Cuda.syncCheck();
        try {
            Cuda.setSyncCheck(true);
            assertTrue(Cuda.syncCheck());
            CaptureState.enter("g");
            assertFalse(Cuda.syncCheck(), "a synchronize after each launch would break the capture");
            assertTrue(CudaGraph.capturing());
            CudaException e = assertThrows(CudaException.class, () -> CudaGraph.requireNotCapturing("upload x"));
            assertTrue(e.getMessage().startsWith("not capturable: upload x inside the capture of CUDA graph 'g'"),
                    e.getMessage());
            assertThrows(IllegalStateException.class, () -> CaptureState.enter("nested"));
            CaptureState.exit();
            assertFalse(CudaGraph.capturing());
        } finally {
            Cuda.setSyncCheck(was);
        }
        String m = new CudaException("cuMemcpyDtoHAsync(4 bytes)", CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED)
                .getMessage();
        assertEquals("not capturable: cuMemcpyDtoHAsync(4 bytes) failed: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", m);
        assertEquals("cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY",
                new CudaException("cuMemAlloc", CUresult.CUDA_ERROR_OUT_OF_MEMORY).getMessage());
    }
}
