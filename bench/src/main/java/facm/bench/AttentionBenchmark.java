package facm.bench;

import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.NetworkOps;
import facm.tensor.Tensor;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * The attention kernels alone, through {@link NetworkOps}: forward ({@code attention}, lse written), backward
 * ({@code attentionBackward}, from a forward's out and lse) and the fused forward-mode pass ({@code attentionJvp}).
 * q, k, v (and tangents, gradOut) are random normals in {@code dtype}; the kernel is chosen by that dtype (F32: the
 * fp32 flash kernels; BF16: the tensor-core kernels once they exist, which fails cleanly until then). One invocation
 * queues {@value #CALLS_PER_INVOCATION} calls and synchronizes.
 *
 * <p>FLOP per call, with N = B·H·T²·dh (each T×T×dh product is 2N):
 * <ul>
 *   <li>fwd 4N: S = q·kᵀ and O = P·v;</li>
 *   <li>bwd 10N = 2.5× fwd: S recomputed from q, k and lse (2N, counted), dV = Pᵀ·dO, dP = dO·vᵀ, dQ = dS·k,
 *       dK = dSᵀ·q;</li>
 *   <li>jvp 12N = 3× fwd: S, Ṡ = q̇·kᵀ + q·k̇ᵀ (4N), P·v, P·v̇ and (P ⊙ Ṡ)·v.</li>
 * </ul>
 * Primary metric: calls/s; {@code teraflop}: TFLOP/s of wall time; with {@code -prof facm.bench.GpuTimeProfiler} the
 * CUDA-event time per invocation, TFLOP/s from it and the fraction of the card's measured bf16 rate. {@code shape} is
 * "BxHxTxDH"; {@code -p backend=cpu -p shape=2x2x16x8} tries the harness without a GPU.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class AttentionBenchmark {
    static final int CALLS_PER_INVOCATION = 10;

    @Param({"fwd", "bwd", "jvp"})
    public String op;

    @Param({"F32", "BF16"})
    public String dtype;

    /** XL/1 training (B32) and sampling (B256) shapes, B/1 (dh 64) and a dh-128 head layout. */
    @Param({"32x16x256x72", "256x16x256x72", "32x12x256x64", "32x8x256x128"})
    public String shape;

    @Param({"cuda"})
    public String backend;

    private Backend be;
    private NetworkOps ops;
    private KernelInputs tensors;
    private RegionTimer timer;
    private Runnable call;
    private double flopPerInvocation;

    /** TFLOP done; JMH divides by the iteration's wall time. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Flop {
        public double teraflop;

        @Setup(Level.Iteration)
        public void reset() {
            teraflop = 0;
        }
    }

    static int[] parseShape(String text, int parts, String format) {
        String[] p = text.toLowerCase(Locale.ROOT).split("x");
        int[] out = new int[p.length];
        try {
            for (int i = 0; i < p.length; i++) {
                out[i] = Integer.parseInt(p[i]);
            }
        } catch (NumberFormatException e) {
            out = new int[0];
        }
        if (out.length != parts || java.util.Arrays.stream(out).anyMatch(v -> v <= 0)) {
            throw new IllegalArgumentException("shape '" + text + "' is not " + format + " with positive sizes");
        }
        return out;
    }

    /** FLOP of one call of {@code op}, as in the class comment. */
    static double flopPerCall(String op, int b, int h, int t, int dh) {
        double n = (double) b * h * t * t * dh;
        return switch (op) {
            case "fwd" -> 4 * n;
            case "bwd" -> 10 * n;
            case "jvp" -> 12 * n;
            default -> throw new IllegalArgumentException("AttentionBenchmark op '" + op + "': use fwd, bwd or jvp");
        };
    }

    @Setup(Level.Trial)
    public void setUp() {
        GpuTimes.resetTrial();
        int[] s = parseShape(shape, 4, "BxHxTxDH");
        int b = s[0];
        int h = s[1];
        int t = s[2];
        int dh = s[3];
        flopPerInvocation = CALLS_PER_INVOCATION * flopPerCall(op, b, h, t, dh);
        DType in = KernelInputs.dtype(dtype);
        be = TimingPreconditions.open(backend, "AttentionBenchmark");
        double cardRate = CardRate.bf16Tflops(be);
        ops = be.network();
        tensors = new KernelInputs(be);
        float scale = (float) (1.0 / Math.sqrt(dh));
        Tensor q = tensors.random("q", in, b, h, t, dh);
        Tensor k = tensors.random("k", in, b, h, t, dh);
        Tensor v = tensors.random("v", in, b, h, t, dh);
        Tensor lse = tensors.empty("lse", DType.F32, b, h, t);
        String what = "attention " + op + " " + shape;
        DType outType = tensors.firstWorking(what, in, out -> {
            Tensor o = tensors.empty("out", out, b, t, h * dh);
            switch (op) {
                case "fwd" -> call = () -> ops.attention(q, k, v, scale, o, lse);
                case "bwd" -> {
                    ops.attention(q, k, v, scale, o, lse);
                    Tensor gradOut = tensors.random("gradOut", out, b, t, h * dh);
                    Tensor gq = tensors.empty("gradQ", out, b, h, t, dh);
                    Tensor gk = tensors.empty("gradK", out, b, h, t, dh);
                    Tensor gv = tensors.empty("gradV", out, b, h, t, dh);
                    call = () -> ops.attentionBackward(q, k, v, scale, o, lse, gradOut, gq, gk, gv);
                }
                case "jvp" -> {
                    Tensor qd = tensors.random("qDot", in, b, h, t, dh);
                    Tensor kd = tensors.random("kDot", in, b, h, t, dh);
                    Tensor vd = tensors.random("vDot", in, b, h, t, dh);
                    Tensor od = tensors.empty("outDot", out, b, t, h * dh);
                    call = () -> ops.attentionJvp(q, k, v, qd, kd, vd, scale, o, od, lse);
                }
                default -> throw new IllegalArgumentException("AttentionBenchmark op '" + op
                        + "': use fwd, bwd or jvp");
            }
            call.run();
        });
        timer = new RegionTimer(be);
        GpuTimes.describe(new GpuTimes.Work("calls", CALLS_PER_INVOCATION, flopPerInvocation, 0, cardRate));
        System.out.printf(Locale.ROOT, "%nAttentionBenchmark: %s on %s, B %d H %d T %d dh %d, %s inputs, %s outputs, "
                + "%.3f GFLOP per call%n", op, be.describe(), b, h, t, dh, in, outType,
                flopPerInvocation / CALLS_PER_INVOCATION / 1e9);
    }

    @Benchmark
    @OperationsPerInvocation(CALLS_PER_INVOCATION)
    public void attention(Flop counter) {
        timer.begin();
        for (int i = 0; i < CALLS_PER_INVOCATION; i++) {
            call.run();
        }
        be.synchronize();
        timer.end();
        counter.teraflop += flopPerInvocation / 1e12;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        System.out.printf("%nAttentionBenchmark %s %s %s: %s%n", op, dtype, shape, GpuTimeProfiler.summary());
        if (timer != null) {
            timer.close();
        }
        if (tensors != null) {
            tensors.close();
        }
        if (be != null) {
            be.close();
        }
    }
}
