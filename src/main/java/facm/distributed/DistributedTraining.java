package facm.distributed;

import facm.backend.cuda.CudaBackend;
import facm.cuda.Cuda;
import facm.distributed.nccl.NcclCommunicator;
import facm.tensor.Backend;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What {@code train} needs to run as part of a data-parallel job: the launcher for {@code --gpus N} /
 * {@code --workers N}, and for a worker (a process whose environment names a world) its device, its console and its
 * communicator (NCCL on CUDA, the host star on the CPU).
 */
public final class DistributedTraining {
    static final int DEFAULT_RENDEZVOUS_SECONDS = 120;
    static final int DEFAULT_COLLECTIVE_SECONDS = 600;

    private final WorldRank world;
    private final Duration rendezvousTimeout;
    private final Duration collectiveTimeout;

    private DistributedTraining(WorldRank world, Duration rendezvousTimeout, Duration collectiveTimeout) {
        this.world = world;
        this.rendezvousTimeout = rendezvousTimeout;
        this.collectiveTimeout = collectiveTimeout;
    }

    /** This process's place: a worker of the job its environment names, else a single process. Null = defaults. */
    public static DistributedTraining fromEnvironment(Integer rendezvousSeconds, Integer collectiveSeconds) {
        WorldRank w = WorldRank.inEnvironment(System.getenv()) ? WorldRank.fromEnvironment(System.getenv())
                : WorldRank.single();
        return new DistributedTraining(w, seconds("--rendezvous-timeout", rendezvousSeconds,
                DEFAULT_RENDEZVOUS_SECONDS), seconds("--collective-timeout", collectiveSeconds,
                DEFAULT_COLLECTIVE_SECONDS));
    }

    private static Duration seconds(String flag, Integer given, int fallback) {
        int s = given == null ? fallback : given;
        if (s < 1) {
            throw new IllegalArgumentException(flag + " must be >= 1 second, got " + s);
        }
        return Duration.ofSeconds(s);
    }

    public WorldRank world() {
        return world;
    }

    /** Rank 0 (and a single process) print to stdout; other ranks stay quiet (errors still reach stderr). */
    public PrintStream console() {
        return world.isMaster() ? System.out : new PrintStream(OutputStream.nullOutputStream());
    }

    /**
     * The device spec this rank trains on: "cpu" for a --workers job; for a GPU job, device LOCAL_RANK wherever the
     * options say "auto" or "cuda" (an explicit cuda:N is kept: the user placed the rank).
     */
    public String deviceSpec(String optionDevice) {
        if (!world.distributed()) {
            return optionDevice;
        }
        String launcherDevice = System.getenv(WorkerLauncher.WORKER_DEVICE);
        if ("cpu".equals(launcherDevice)) {
            return "cpu";
        }
        String d = optionDevice == null ? "auto" : optionDevice.trim().toLowerCase(Locale.ROOT);
        if (d.equals("cuda") || (d.equals("auto") && ("cuda".equals(launcherDevice) || Cuda.available()))) {
            return "cuda:" + world.localRank();
        }
        return d;
    }

    /** The communicator of this rank on {@code backend}, after the rendezvous; null in a single process. */
    public Communicator connect(Backend backend) {
        if (!world.distributed()) {
            return null;
        }
        if (backend instanceof CudaBackend cuda) {
            return NcclCommunicator.connect(world, cuda, rendezvousTimeout, collectiveTimeout, System.err);
        }
        return new HostCommunicator(HostStar.connect(world, rendezvousTimeout, collectiveTimeout, () -> new byte[0]));
    }

    /**
     * Runs {@code train} with {@code args} (the launcher's own flags removed) as {@code n} workers on this host and
     * returns the job's exit code.
     */
    public static int launch(List<String> originalArgs, int n, String device) throws IOException {
        List<String> cmd = new ArrayList<>(WorkerLauncher.javaCommand("facm.cli.Main"));
        cmd.add("train");
        cmd.addAll(workerArgs(originalArgs));
        return new WorkerLauncher(cmd, n, device, System.out).run();
    }

    /**
     * The arguments without --gpus N / --workers N (also in the --gpus=N form), and without the command name when
     * the parser's original arguments start with it.
     */
    static List<String> workerArgs(List<String> args) {
        List<String> out = new ArrayList<>();
        for (int i = !args.isEmpty() && args.getFirst().equals("train") ? 1 : 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("--gpus") || a.equals("--workers")) {
                i++;
            } else if (!a.startsWith("--gpus=") && !a.startsWith("--workers=")) {
                out.add(a);
            }
        }
        return out;
    }
}
