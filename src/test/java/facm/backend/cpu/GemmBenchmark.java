package facm.backend.cpu;

import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;

/**
 * Manual timing of the CPU GEMM (not a unit test). Run after {@code mvn test-compile}:
 * <pre>java -cp target/classes:target/test-classes facm.backend.cpu.GemmBenchmark [size] [threads]</pre>
 */
public final class GemmBenchmark {
    private GemmBenchmark() {
    }

    public static void main(String[] args) {
        int size = args.length > 0 ? Integer.parseInt(args[0]) : 512;
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : Runtime.getRuntime().availableProcessors();
        try (CpuBackend cpu = new CpuBackend(threads);
             Tensor a = cpu.empty("a", DType.F32, size, size);
             Tensor b = cpu.empty("b", DType.F32, size, size);
             Tensor out = cpu.empty("out", DType.F32, size, size);
             Tensor a16 = cpu.empty("a16", DType.BF16, size, size);
             Tensor b16 = cpu.empty("b16", DType.BF16, size, size)) {
            cpu.randomNormal(a, 1, 0);
            cpu.randomNormal(b, 2, 0);
            cpu.convert(a, a16);
            cpu.convert(b, b16);
            System.out.println(cpu.describe() + ", " + size + "x" + size + "x" + size);
            for (GemmPrecision p : GemmPrecision.values()) {
                for (boolean transB : new boolean[] {false, true}) {
                    Tensor x = p == GemmPrecision.BF16 ? a16 : a;
                    Tensor y = p == GemmPrecision.BF16 ? b16 : b;
                    double best = Double.MAX_VALUE;
                    for (int rep = 0; rep < 15; rep++) {
                        long t0 = System.nanoTime();
                        cpu.gemm(x, false, y, transB, out, 1f, 0f, p);
                        best = Math.min(best, (System.nanoTime() - t0) * 1e-9);
                    }
                    double gflops = 2.0 * size * size * size / best * 1e-9;
                    System.out.printf("%-5s transB=%-5s best %.2f ms  %.1f GFLOP/s%n", p, transB, best * 1e3, gflops);
                }
            }
        }
    }
}
