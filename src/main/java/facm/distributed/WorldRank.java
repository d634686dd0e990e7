package facm.distributed;

import java.util.Map;

/**
 * Who this process is in a data-parallel job: the environment contract of torchrun and most launchers.
 * {@code WORLD_SIZE} processes in all, this one is {@code RANK} (0 is the master), {@code LOCAL_RANK} picks the GPU on
 * its host, and rank 0 serves the rendezvous at {@code MASTER_ADDR:MASTER_PORT}.
 */
public record WorldRank(int rank, int localRank, int worldSize, String masterAddr, int masterPort) {

    public WorldRank {
        if (worldSize < 1) {
            throw new IllegalArgumentException("WORLD_SIZE must be >= 1, got " + worldSize);
        }
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("RANK must be in 0.." + (worldSize - 1) + ", got " + rank);
        }
        if (localRank < 0) {
            throw new IllegalArgumentException("LOCAL_RANK must be >= 0, got " + localRank);
        }
        if (worldSize > 1 && (masterAddr == null || masterAddr.isBlank())) {
            throw new IllegalArgumentException("MASTER_ADDR is required when WORLD_SIZE > 1");
        }
        if (worldSize > 1 && (masterPort < 1 || masterPort > 65535)) {
            throw new IllegalArgumentException("MASTER_PORT must be in 1..65535, got " + masterPort);
        }
    }

    /** A single process: rank 0 of 1, no rendezvous. */
    public static WorldRank single() {
        return new WorldRank(0, 0, 1, "127.0.0.1", 0);
    }

    /** True when the environment names a world ({@code WORLD_SIZE} is set): this process is a worker of a job. */
    public static boolean inEnvironment(Map<String, String> env) {
        return env.get("WORLD_SIZE") != null;
    }

    /** The world from {@code WORLD_SIZE}, {@code RANK}, {@code LOCAL_RANK} (default RANK), MASTER_ADDR, MASTER_PORT. */
    public static WorldRank fromEnvironment(Map<String, String> env) {
        int world = intVar(env, "WORLD_SIZE", null);
        int rank = intVar(env, "RANK", world == 1 ? "0" : null);
        int local = intVar(env, "LOCAL_RANK", Integer.toString(rank));
        String addr = env.getOrDefault("MASTER_ADDR", world == 1 ? "127.0.0.1" : null);
        int port = intVar(env, "MASTER_PORT", world == 1 ? "0" : null);
        return new WorldRank(rank, local, world, addr, port);
    }

    private static int intVar(Map<String, String> env, String name, String fallback) {
        String v = env.getOrDefault(name, fallback);
        if (v == null) {
            throw new IllegalArgumentException(name + " is not set (a worker of a data-parallel job needs WORLD_SIZE, "
                    + "RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)");
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be an integer, got '" + v + "'");
        }
    }

    public boolean isMaster() {
        return rank == 0;
    }

    public boolean distributed() {
        return worldSize > 1;
    }

    @Override
    public String toString() {
        return "rank " + rank + " of " + worldSize + " (local rank " + localRank + ", master " + masterAddr + ":"
                + masterPort + ")";
    }
}
