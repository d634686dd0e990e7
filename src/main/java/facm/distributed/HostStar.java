package facm.distributed;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.function.Supplier;

/**
 * The rendezvous and the host-side collectives of a job: a TCP star with rank 0 at the centre.
 *
 * <p>Rendezvous: rank 0 listens on {@code MASTER_PORT}; every other rank connects (retrying until rank 0 is up),
 * sends (magic, world size, rank), and receives rank 0's payload (the NCCL unique id, or nothing). A rank that does
 * not arrive within the rendezvous timeout, a duplicate rank or a world size that disagrees is an error on both
 * sides, naming the ranks concerned.
 *
 * <p>Collectives: every rank sends its values to rank 0, which adds them up in rank order 0, 1, 2, … (in double) and
 * sends the same result back to all, so the result is bit-identical on every rank and does not depend on arrival
 * order. Used for the per-step scalars (loss, stop flag) on every backend, and for the gradients of the CPU backend,
 * which NCCL cannot reduce (it only takes device memory). Every read waits at most the collective timeout; a peer that
 * died shows as a closed connection. Either way the error names the peer.
 */
public final class HostStar implements AutoCloseable {
    private static final int MAGIC = 0xFAC0_D001;
    private static final int RETRY_MILLIS = 200;

    private final WorldRank world;
    private final Duration collectiveTimeout;
    private final List<Link> peers; // rank 0: index r-1 is rank r; others: the single link to rank 0
    private final byte[] payload;
    private boolean closed;

    private record Link(int rank, Socket socket, DataInputStream in, DataOutputStream out) {
        static Link of(int rank, Socket s) throws IOException {
            return new Link(rank, s, new DataInputStream(new BufferedInputStream(s.getInputStream(), 1 << 16)),
                    new DataOutputStream(new BufferedOutputStream(s.getOutputStream(), 1 << 16)));
        }
    }

    private HostStar(WorldRank world, Duration collectiveTimeout, List<Link> peers, byte[] payload) {
        this.world = world;
        this.collectiveTimeout = collectiveTimeout;
        this.peers = peers;
        this.payload = payload;
    }

    /**
     * Meets every rank of {@code world}. Rank 0 calls {@code masterPayload} once before accepting and sends its bytes
     * to everyone; {@link #payload()} then holds them on every rank.
     */
    public static HostStar connect(WorldRank world, Duration rendezvousTimeout, Duration collectiveTimeout,
                                   Supplier<byte[]> masterPayload) {
        if (!world.distributed()) {
            return new HostStar(world, collectiveTimeout, List.of(), masterPayload.get());
        }
        long deadline = System.nanoTime() + rendezvousTimeout.toNanos();
        try {
            return world.isMaster() ? serve(world, deadline, rendezvousTimeout, collectiveTimeout, masterPayload.get())
                    : join(world, deadline, rendezvousTimeout, collectiveTimeout);
        } catch (IOException e) {
            throw new DistributedException("rendezvous of " + world + " failed: " + e, e);
        }
    }

    private static HostStar serve(WorldRank world, long deadline, Duration timeout, Duration collectiveTimeout,
                                  byte[] payload) throws IOException {
        Link[] byRank = new Link[world.worldSize()];
        try (ServerSocket server = new ServerSocket()) {
            server.setReuseAddress(true);
            server.bind(new InetSocketAddress(world.masterPort()));
            int arrived = 1;
            while (arrived < world.worldSize()) {
                int left = remainingMillis(deadline);
                if (left <= 0) {
                    closeQuietly(byRank);
                    throw new DistributedException("rendezvous: " + missing(byRank) + " of " + world.worldSize()
                            + " did not arrive at port " + world.masterPort() + " within " + timeout.toSeconds()
                            + " s (rank 0 waited; are all workers started with the same MASTER_ADDR/MASTER_PORT?)");
                }
                server.setSoTimeout(left);
                Socket s;
                try {
                    s = server.accept();
                } catch (SocketTimeoutException e) {
                    continue;
                }
                s.setTcpNoDelay(true);
                s.setSoTimeout(Math.max(1, remainingMillis(deadline)));
                Link link = Link.of(-1, s);
                int magic = link.in().readInt();
                int peerWorld = link.in().readInt();
                int peerRank = link.in().readInt();
                String problem = magic != MAGIC ? "not a facm worker (bad magic)"
                        : peerWorld != world.worldSize() ? "it has WORLD_SIZE " + peerWorld + ", rank 0 has "
                        + world.worldSize()
                        : peerRank < 1 || peerRank >= world.worldSize() ? "rank " + peerRank + " is out of range"
                        : byRank[peerRank] != null ? "rank " + peerRank + " arrived twice" : null;
                if (problem != null) {
                    s.close();
                    closeQuietly(byRank);
                    throw new DistributedException("rendezvous: a connection from " + s.getRemoteSocketAddress()
                            + " was refused: " + problem);
                }
                byRank[peerRank] = new Link(peerRank, s, link.in(), link.out());
                arrived++;
            }
        }
        List<Link> peers = new ArrayList<>();
        for (int r = 1; r < byRank.length; r++) {
            Link l = byRank[r];
            l.out().writeInt(MAGIC);
            l.out().writeInt(payload.length);
            l.out().write(payload);
            l.out().flush();
            l.socket().setSoTimeout(millis(collectiveTimeout));
            peers.add(l);
        }
        return new HostStar(world, collectiveTimeout, peers, payload);
    }

    private static HostStar join(WorldRank world, long deadline, Duration timeout, Duration collectiveTimeout)
            throws IOException {
        IOException last = null;
        Socket s = null;
        while (s == null) {
            int left = remainingMillis(deadline);
            if (left <= 0) {
                throw new DistributedException("rendezvous: rank " + world.rank() + " could not reach rank 0 at "
                        + world.masterAddr() + ":" + world.masterPort() + " within " + timeout.toSeconds() + " s"
                        + (last == null ? "" : " (last error: " + last.getMessage() + ")"));
            }
            Socket attempt = new Socket();
            try {
                attempt.connect(new InetSocketAddress(world.masterAddr(), world.masterPort()), Math.min(left, 5000));
                s = attempt;
            } catch (IOException e) {
                attempt.close();
                last = e;
                sleep(Math.min(RETRY_MILLIS, Math.max(1, remainingMillis(deadline))));
            }
        }
        s.setTcpNoDelay(true);
        Link link = Link.of(0, s);
        link.out().writeInt(MAGIC);
        link.out().writeInt(world.worldSize());
        link.out().writeInt(world.rank());
        link.out().flush();
        s.setSoTimeout(Math.max(1, remainingMillis(deadline)));
        try {
            if (link.in().readInt() != MAGIC) {
                throw new DistributedException("rendezvous: " + world.masterAddr() + ":" + world.masterPort()
                        + " is not a facm rank 0 (bad magic)");
            }
            byte[] payload = new byte[link.in().readInt()];
            link.in().readFully(payload);
            s.setSoTimeout(millis(collectiveTimeout));
            return new HostStar(world, collectiveTimeout, List.of(link), payload);
        } catch (SocketTimeoutException e) {
            s.close();
            throw new DistributedException("rendezvous: rank " + world.rank() + " reached rank 0 but the other ranks "
                    + "did not all arrive within " + timeout.toSeconds() + " s", e);
        } catch (EOFException e) {
            s.close();
            throw new DistributedException("rendezvous: rank 0 closed the connection before every rank arrived "
                    + "(it gave up or failed: see its output)", e);
        }
    }

    public WorldRank world() {
        return world;
    }

    /** What rank 0 sent at the rendezvous (e.g. the NCCL unique id). */
    public byte[] payload() {
        return payload.clone();
    }

    /** Σ over ranks, added in rank order in double: the same bits on every rank. */
    public double[] sum(double[] values) {
        if (!world.distributed()) {
            return values.clone();
        }
        ByteBuffer mine = ByteBuffer.allocate(values.length * Double.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        mine.asDoubleBuffer().put(values);
        byte[] result = exchange("sum of " + values.length + " scalars", mine.array(), (acc, in) -> {
            var a = ByteBuffer.wrap(acc).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer();
            var b = ByteBuffer.wrap(in).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer();
            for (int i = 0; i < values.length; i++) {
                a.put(i, a.get(i) + b.get(i));
            }
        });
        double[] out = new double[values.length];
        ByteBuffer.wrap(result).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(out);
        return out;
    }

    /** The mean over ranks of {@code values} (added in rank order in double, divided once, rounded once). */
    public float[] mean(float[] values) {
        if (!world.distributed()) {
            return values.clone();
        }
        double[] wide = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            wide[i] = values[i];
        }
        double[] s = sum(wide);
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = (float) (s[i] / world.worldSize());
        }
        return out;
    }

    /** Rank 0's bytes on every rank. */
    public byte[] broadcast(byte[] fromMaster) {
        if (!world.distributed()) {
            return fromMaster.clone();
        }
        return exchange("broadcast", world.isMaster() ? fromMaster : new byte[0], null);
    }

    /** Returns when every rank has called it. */
    public void barrier() {
        sum(new double[1]);
    }

    /** The star exchange: peers send theirs, rank 0 folds them in rank order ({@code fold} null: keep rank 0's). */
    private byte[] exchange(String what, byte[] mine, Fold fold) {
        requireOpen();
        int current = -1;
        try {
            if (!world.isMaster()) {
                Link l = peers.getFirst();
                current = 0;
                l.out().writeInt(mine.length);
                l.out().write(mine);
                l.out().flush();
                byte[] result = new byte[l.in().readInt()];
                l.in().readFully(result);
                return result;
            }
            byte[] acc = mine.clone();
            byte[] in = new byte[mine.length];
            for (Link l : peers) {
                current = l.rank();
                int n = l.in().readInt();
                if (fold != null && n != mine.length) {
                    throw new DistributedException(what + ": rank " + l.rank() + " sent " + n + " bytes, rank 0 has "
                            + mine.length + " (the ranks disagree about the model or the step)");
                }
                if (in.length != n) {
                    in = new byte[n];
                }
                l.in().readFully(in);
                if (fold != null) {
                    fold.add(acc, in);
                }
            }
            for (Link l : peers) {
                current = l.rank();
                l.out().writeInt(acc.length);
                l.out().write(acc);
                l.out().flush();
            }
            return acc;
        } catch (SocketTimeoutException e) {
            throw new DistributedException(what + ": rank " + current + " did not answer within "
                    + collectiveTimeout.toSeconds() + " s (hung or overloaded; --collective-timeout raises the limit)",
                    e);
        } catch (EOFException e) {
            throw new DistributedException(what + ": lost rank " + current + " (connection closed: the worker died "
                    + "or stopped; see its output)", e);
        } catch (IOException e) {
            throw new DistributedException(what + ": lost rank " + current + " (" + e.getMessage() + ")", e);
        }
    }

    @FunctionalInterface
    private interface Fold {
        void add(byte[] acc, byte[] in);
    }

    private void requireOpen() {
        if (closed) {
            throw new IllegalStateException("host star of " + world + " is closed");
        }
    }

    private static String missing(Link[] byRank) {
        TreeSet<Integer> m = new TreeSet<>();
        for (int r = 1; r < byRank.length; r++) {
            if (byRank[r] == null) {
                m.add(r);
            }
        }
        return (m.size() == 1 ? "rank " : "ranks ") + m;
    }

    private static int remainingMillis(long deadline) {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        return (int) Math.max(0, Math.min(Integer.MAX_VALUE, left));
    }

    private static int millis(Duration d) {
        return (int) Math.max(1, Math.min(Integer.MAX_VALUE, d.toMillis()));
    }

    private static void sleep(int millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new DistributedException("rendezvous interrupted", e);
        }
    }

    private static void closeQuietly(Link[] links) {
        for (Link l : links) {
            if (l != null) {
                try {
                    l.socket().close();
                } catch (IOException ignored) {
                    // already failing
                }
            }
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        closeQuietly(peers.toArray(Link[]::new));
    }
}
