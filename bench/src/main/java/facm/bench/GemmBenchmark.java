package facm.bench;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
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
 * Matrix-product throughput through {@link Backend#gemm}, in the layout of a linear layer: out[m,n] = x[m,k] · W[n,k]ᵀ
 * (as {@link Backend#linear} calls it). One invocation queues {@value #GEMMS_PER_INVOCATION} products and then
 * synchronizes the stream, so the time is GPU time plus one round trip spread over ten products.
 *
 * <p>Primary metric: GEMM/s. Secondary metric {@code teraflop}: TFLOP/s, with FLOP = 2·m·n·k per product (beta = 0,
 * so no extra term). Compare with tools/reference/gemm_bench.py, which times PyTorch on the same shapes and modes.
 *
 * <p>Shapes are "MxKxN": squares 4096 and 8192, and the LightningDiT-XL/1 projections at 16384 tokens (hidden 1152):
 * qkv (n = 3·1152) and the SwiGLU w12 (n = 2·3072). Modes: {@code bf16-f32} and {@code bf16-bf16} (BF16 inputs, F32
 * or BF16 output), {@code tf32} and {@code fp32} (F32 tensors). {@code -p backend=cpu -p shape=256x256x256} tries the
 * harness on a machine without a GPU.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
// Forks run with -cp, so the manifest's Enable-Native-Access does not reach them; JMH's own Unsafe use warns on 25.
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"})
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
public class GemmBenchmark {
    static final int GEMMS_PER_INVOCATION = 10;

    @Param({"4096x4096x4096", "8192x8192x8192", "16384x1152x3456", "16384x1152x6144"})
    public String shape;

    @Param({"bf16-f32", "bf16-bf16", "tf32", "fp32"})
    public String mode;

    @Param({"cuda"})
    public String backend;

    private Backend be;
    private Tensor x;
    private Tensor w;
    private Tensor out;
    private GemmPrecision precision;
    private double teraflopPerInvocation;

    /** m, k, n of one product, parsed from "MxKxN". */
    record GemmShape(int m, int k, int n) {
        static GemmShape parse(String text) {
            String[] p = text.toLowerCase(Locale.ROOT).split("x");
            try {
                if (p.length == 3) {
                    GemmShape s = new GemmShape(Integer.parseInt(p[0]), Integer.parseInt(p[1]), Integer.parseInt(p[2]));
                    if (s.m > 0 && s.k > 0 && s.n > 0) {
                        return s;
                    }
                }
            } catch (NumberFormatException e) {
                // reported below
            }
            throw new IllegalArgumentException("GemmBenchmark shape '" + text + "' is not MxKxN with positive sizes");
        }

        double flop() {
            return 2.0 * m * n * k;
        }
    }

    /** Counts TFLOP done; JMH divides by the iteration's time, so it reads as TFLOP/s. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class FlopCounter {
        public double teraflop;

        @Setup(Level.Iteration)
        public void reset() {
            teraflop = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        GemmShape s = GemmShape.parse(shape);
        teraflopPerInvocation = GEMMS_PER_INVOCATION * s.flop() / 1e12;
        be = switch (backend) {
            case "cuda" -> {
                TimingPreconditions.requireGpu("GemmBenchmark");
                TimingPreconditions.requireAsynchronousLaunches("GemmBenchmark");
                yield CudaBackend.open(0);
            }
            case "cpu" -> new CpuBackend();
            default -> throw new IllegalArgumentException("GemmBenchmark backend '" + backend + "': use cuda or cpu");
        };
        boolean bf16 = mode.startsWith("bf16");
        precision = switch (mode) {
            case "bf16-f32", "bf16-bf16" -> GemmPrecision.BF16;
            case "tf32" -> GemmPrecision.TF32;
            case "fp32" -> GemmPrecision.FP32;
            default -> throw new IllegalArgumentException("GemmBenchmark mode '" + mode
                    + "': use bf16-f32, bf16-bf16, tf32 or fp32");
        };
        // Random normal inputs (never zeros: some GEMM paths are faster on zeros), made on the device.
        x = randomInput("x", s.m, s.k, 1, bf16);
        w = randomInput("w", s.n, s.k, 2, bf16);
        out = be.empty("out", mode.equals("bf16-bf16") ? DType.BF16 : DType.F32, s.m, s.n);
        // One product before timing: plans, workspaces and first-use costs stay out of the warm-up's first iteration.
        be.gemm(x, false, w, true, out, 1f, 0f, precision);
        be.synchronize();
        System.out.println("\nGemmBenchmark: " + be.describe() + "; x " + x.describe() + " · w " + w.describe()
                + "ᵀ -> " + out.describe() + ", " + precision);
    }

    private Tensor randomInput(String name, int rows, int cols, long seed, boolean bf16) {
        Tensor f32 = be.empty(name, DType.F32, rows, cols);
        be.randomNormal(f32, seed, 0);
        if (!bf16) {
            return f32;
        }
        try (f32) {
            Tensor b = be.empty(name, DType.BF16, rows, cols);
            be.convert(f32, b);
            return b;
        }
    }

    @Benchmark
    @OperationsPerInvocation(GEMMS_PER_INVOCATION)
    public void gemm(FlopCounter counter) {
        for (int i = 0; i < GEMMS_PER_INVOCATION; i++) {
            be.gemm(x, false, w, true, out, 1f, 0f, precision);
        }
        be.synchronize();
        counter.teraflop += teraflopPerInvocation;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (Tensor t : new Tensor[] {x, w, out}) {
            if (t != null) {
                t.close();
            }
        }
        if (be != null) {
            be.close();
        }
    }
}
