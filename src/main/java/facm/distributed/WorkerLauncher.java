package facm.distributed;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code train --gpus N} / {@code --workers N}: starts N worker JVMs on this host, each with the environment contract of
 * {@link WorldRank} (RANK = LOCAL_RANK = i, WORLD_SIZE = N, MASTER_ADDR = 127.0.0.1, a free MASTER_PORT) and the same
 * runtime, class path and JVM flags as this one. Their output comes back line by line with a {@code [rank i]} prefix.
 *
 * <p>The job is all or nothing: when a worker exits with a non-zero code, the launcher stops the others (SIGTERM,
 * then SIGKILL after {@value #GRACE_SECONDS} s), prints one line naming the rank and its exit code, and returns
 * non-zero. A launcher that is itself stopped (Ctrl-C, SIGTERM) passes the signal on and waits for the workers to
 * write their checkpoint.
 */
public final class WorkerLauncher {
    static final int GRACE_SECONDS = 10;
    /** How long a failure report waits for the peers that a dead worker takes down with it. */
    private static final long SETTLE_MILLIS = 500;
    /** Environment variable telling a worker which backend its launcher meant: "cpu" (--workers) or "cuda" (--gpus). */
    public static final String WORKER_DEVICE = "FACM_WORKER_DEVICE";

    private final List<String> command;
    private final int workers;
    private final String device;
    private final PrintStream out;
    private final List<Process> processes = new ArrayList<>();
    private final List<Thread> pumps = new ArrayList<>();

    /**
     * @param command the worker command line (see {@link #javaCommand}), the same for every rank
     * @param workers N
     * @param device  "cuda" (one GPU per worker, device LOCAL_RANK) or "cpu"
     */
    public WorkerLauncher(List<String> command, int workers, String device, PrintStream out) {
        if (workers < 1) {
            throw new IllegalArgumentException("the number of workers must be >= 1, got " + workers);
        }
        this.command = List.copyOf(command);
        this.workers = workers;
        this.device = device;
        this.out = out;
    }

    /** {java, JVM flags of this JVM, -cp, this class path, mainClass}: a worker runs what this process runs. */
    public static List<String> javaCommand(String mainClass) {
        List<String> c = new ArrayList<>();
        c.add(ProcessHandle.current().info().command().orElse(
                System.getProperty("java.home") + "/bin/java"));
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!a.startsWith("-agentlib:jdwp") && !a.startsWith("-Djava.class.path")) {
                c.add(a); // a debugger port would clash between workers
            }
        }
        c.add("-cp");
        c.add(System.getProperty("java.class.path"));
        c.add(mainClass);
        return c;
    }

    /** Starts the workers, relays their output, and returns the job's exit code (0 when every worker succeeded). */
    public int run() throws IOException {
        int port = freePort();
        Thread hook = new Thread(this::stopAll, "facm-launcher-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try {
            for (int rank = 0; rank < workers; rank++) {
                ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
                Map<String, String> env = pb.environment();
                env.put("WORLD_SIZE", Integer.toString(workers));
                env.put("RANK", Integer.toString(rank));
                env.put("LOCAL_RANK", Integer.toString(rank));
                env.put("MASTER_ADDR", "127.0.0.1");
                env.put("MASTER_PORT", Integer.toString(port));
                env.put("NCCL_NVLS_ENABLE", "0");
                env.put(WORKER_DEVICE, device);
                Process p = pb.start();
                synchronized (this) {
                    processes.add(p);
                }
                pumps.add(pump(rank, p));
            }
            out.printf("launched %d %s workers (pids %s), rendezvous at 127.0.0.1:%d%n", workers, device,
                    processes.stream().map(p -> Long.toString(p.pid())).toList(), port);
            return monitor();
        } finally {
            stopAll();
            for (Thread t : pumps) {
                try {
                    t.join(5000);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running or ran
            }
        }
    }

    /** The worker processes (for tests that kill one). */
    public synchronized List<Process> processes() {
        return List.copyOf(processes);
    }

    private int monitor() {
        boolean[] done = new boolean[workers];
        int left = workers;
        while (left > 0) {
            for (int r = 0; r < workers; r++) {
                Process p = processes.get(r);
                if (done[r] || p.isAlive()) {
                    continue;
                }
                done[r] = true;
                left--;
                if (p.exitValue() != 0) {
                    return reportFailure(r);
                }
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return 130;
            }
        }
        return 0;
    }

    /**
     * A worker exited with a non-zero code: names the cause, stops the others, returns the exit code of the job. When
     * one worker dies its peers notice the broken links within milliseconds and exit too (code 1 or 3), so the first
     * one seen dead need not be the cause: after a short settling time the report names a worker killed by a signal
     * (code 128 + n) if there is one, else the lowest rank that failed, and counts the peers that followed it.
     */
    private int reportFailure(int firstSeen) {
        try {
            Thread.sleep(SETTLE_MILLIS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        int cause = firstSeen;
        int followed = 0;
        int stillAlive = 0;
        for (int r = 0; r < workers; r++) {
            Process p = processes.get(r);
            if (p.isAlive()) {
                stillAlive++;
                continue;
            }
            int code = p.exitValue();
            if (code == 0) {
                continue;
            }
            boolean signal = code > 128;
            boolean causeSignal = processes.get(cause).exitValue() > 128;
            if (r != cause && signal && !causeSignal) {
                cause = r;
            }
        }
        for (int r = 0; r < workers; r++) {
            Process p = processes.get(r);
            if (r != cause && !p.isAlive() && p.exitValue() != 0) {
                followed++;
            }
        }
        Process p = processes.get(cause);
        int code = p.exitValue();
        stopAll();
        out.printf("train: worker rank %d (pid %d) exited with code %d%s; stopped the other %d worker(s)%s; "
                + "continue with --resume once the cause is fixed%n", cause, p.pid(), code,
                code == 137 || code == 143 ? " (killed)" : "", stillAlive + followed,
                followed == 0 ? "" : " (" + followed + " of them had already exited after losing it)");
        out.flush();
        return code;
    }

    /** SIGTERM to every live worker (and its children), then SIGKILL for those still alive after the grace time. */
    private synchronized void stopAll() {
        for (Process p : processes) {
            if (p.isAlive()) {
                p.descendants().forEach(ProcessHandle::destroy);
                p.destroy();
            }
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(GRACE_SECONDS);
        for (Process p : processes) {
            try {
                long left = deadline - System.nanoTime();
                if (left <= 0 || !p.waitFor(left, TimeUnit.NANOSECONDS)) {
                    p.descendants().forEach(ProcessHandle::destroyForcibly);
                    p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    private Thread pump(int rank, Process p) {
        String prefix = "[rank " + rank + "] ";
        Thread t = Thread.ofPlatform().daemon().name("facm-rank-" + rank + "-output").start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(),
                    StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (out) {
                        out.println(prefix + line);
                    }
                }
            } catch (IOException e) {
                // the worker is gone; its exit code tells the story
            }
        });
        return t;
    }

    /** A port that was free a moment ago (rank 0 binds it with SO_REUSEADDR). */
    static int freePort() {
        try (ServerSocket s = new ServerSocket(0)) {
            s.setReuseAddress(true);
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("no free TCP port for the rendezvous", e);
        }
    }
}
