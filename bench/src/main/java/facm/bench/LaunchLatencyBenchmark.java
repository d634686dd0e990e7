package facm.bench;

import facm.cuda.CudaDevice;
import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelArg;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * What one kernel launch costs from Java: the empty {@code noop} kernel of kernels/launch.cu, one block of one thread,
 * through {@link Kernel#launch} (argument packing, cuLaunchKernel, status check).
 * <ul>
 *   <li>{@code queuedLaunch}: {@value #LAUNCHES} launches, then one synchronize; the score is µs per launch, the
 *       host-side cost that bounds how many small kernels per second we can issue.</li>
 *   <li>{@code launchAndSynchronize}: one launch and a stream synchronize, the full round trip.</li>
 * </ul>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
// Forks run with -cp, so the manifest's Enable-Native-Access does not reach them; JMH's own Unsafe use warns on 25.
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class LaunchLatencyBenchmark {
    static final int LAUNCHES = 1000;
    static final String KERNEL = "noop";

    private CudaDevice device;
    private CudaStream stream;
    private Kernel noop;

    @Setup(Level.Trial)
    public void setUp() {
        TimingPreconditions.requireGpu("LaunchLatencyBenchmark");
        TimingPreconditions.requireAsynchronousLaunches("LaunchLatencyBenchmark");
        device = CudaDevice.open(0);
        stream = device.stream();
        noop = device.kernels().kernel(KERNEL, KernelArg.I32);
        launchOnce();
        stream.synchronize();
        System.out.println("\nLaunchLatencyBenchmark: kernel " + noop + " on " + device);
    }

    private void launchOnce() {
        noop.launch(stream, 1, 1, 1, 1, 1, 1, 0, 0);
    }

    @Benchmark
    @OperationsPerInvocation(LAUNCHES)
    public void queuedLaunch() {
        for (int i = 0; i < LAUNCHES; i++) {
            launchOnce();
        }
        stream.synchronize();
    }

    @Benchmark
    public void launchAndSynchronize() {
        launchOnce();
        stream.synchronize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (device != null) {
            device.close();
        }
    }
}
