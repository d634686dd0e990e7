package facm.distributed;

import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Rendezvous and host collectives over loopback, ranks as threads; timeouts and lost peers give clear errors. */
class HostStarTest {

    private static WorldRank rank(int r, int world, int port) {
        return new WorldRank(r, r, world, "127.0.0.1", port);
    }

    @Test
    void threeRanksMeetSumInRankOrderAndBroadcast() throws Exception {
        int port = WorkerLauncher.freePort();
        ExecutorService pool = Executors.newFixedThreadPool(3);
        try {
            List<Future<Object[]>> results = new java.util.ArrayList<>();
            for (int r = 0; r < 3; r++) {
                int rank = r;
                results.add(pool.submit(() -> {
                    try (HostStar s = HostStar.connect(rank(rank, 3, port), Duration.ofSeconds(20),
                            Duration.ofSeconds(20), () -> new byte[] {42, 7})) {
                        double[] sum = s.sum(new double[] {rank + 1, 0.1 * rank});
                        float[] mean = s.mean(new float[] {rank, 1f});
                        byte[] b = s.broadcast(new byte[] {(byte) (10 + rank)});
                        s.barrier();
                        return new Object[] {s.payload(), sum, mean, b};
                    }
                }));
            }
            for (Future<Object[]> f : results) {
                Object[] o = f.get();
                assertArrayEquals(new byte[] {42, 7}, (byte[]) o[0], "rank 0's payload reaches everyone");
                assertArrayEquals(new double[] {6, (0.0 + 0.1) + 0.2}, (double[]) o[1], 0.0, "rank-ordered sum");
                assertArrayEquals(new float[] {1f, 1f}, (float[]) o[2]);
                assertArrayEquals(new byte[] {10}, (byte[]) o[3]);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void masterTimesOutNamingTheRankThatNeverCame() {
        int port = WorkerLauncher.freePort();
        DistributedException e = assertThrows(DistributedException.class, () -> HostStar.connect(rank(0, 3, port),
                Duration.ofSeconds(1), Duration.ofSeconds(1), () -> new byte[0]));
        assertTrue(e.getMessage().contains("ranks [1, 2] of 3 did not arrive"), e.getMessage());
    }

    @Test
    void workerTimesOutWhenRankZeroIsNotThere() {
        int port = WorkerLauncher.freePort();
        DistributedException e = assertThrows(DistributedException.class, () -> HostStar.connect(rank(1, 2, port),
                Duration.ofSeconds(1), Duration.ofSeconds(1), () -> new byte[0]));
        assertTrue(e.getMessage().contains("rank 1 could not reach rank 0 at 127.0.0.1:" + port), e.getMessage());
    }

    @Test
    void aPeerThatLeavesIsALostRankNotAHang() throws Exception {
        int port = WorkerLauncher.freePort();
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<?> peer = pool.submit(() -> {
                HostStar s = HostStar.connect(rank(1, 2, port), Duration.ofSeconds(20), Duration.ofSeconds(20),
                        () -> new byte[0]);
                s.close(); // dies before the first collective
                return null;
            });
            try (HostStar master = HostStar.connect(rank(0, 2, port), Duration.ofSeconds(20), Duration.ofSeconds(20),
                    () -> new byte[0])) {
                peer.get();
                DistributedException e = assertThrows(DistributedException.class,
                        () -> master.sum(new double[] {1}));
                assertTrue(e.getMessage().contains("lost rank 1"), e.getMessage());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void worldFromEnvironmentAndLauncherArguments() {
        WorldRank w = WorldRank.fromEnvironment(java.util.Map.of("WORLD_SIZE", "4", "RANK", "3", "LOCAL_RANK", "1",
                "MASTER_ADDR", "10.0.0.1", "MASTER_PORT", "29500"));
        assertEquals(3, w.rank());
        assertEquals(1, w.localRank());
        assertThrows(IllegalArgumentException.class, () -> WorldRank.fromEnvironment(java.util.Map.of(
                "WORLD_SIZE", "2", "RANK", "0")), "MASTER_ADDR is required");
        assertEquals(List.of("--batch", "4", "--out", "x"), DistributedTraining.workerArgs(List.of("--gpus", "2",
                "--batch", "4", "--workers=3", "--out", "x")));
    }
}
