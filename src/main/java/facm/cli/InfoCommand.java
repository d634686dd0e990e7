package facm.cli;

import facm.cuda.Cuda;
import facm.cuda.CudaDevice;
import facm.cuda.DeviceArena;
import facm.cuda.KernelBuildInfo;
import facm.cuda.KernelLibrary;
import facm.cuda.NvidiaDriver;
import facm.cuda.blas.CublasLt;
import facm.port.VariantReport;
import picocli.CommandLine.Command;

import java.io.PrintStream;

/** {@code info}: what this machine offers the engine. Exits 0 with or without a GPU. */
@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Print Java, CPU, GPU, driver, cuBLAS and kernel-build facts; exits 0 on machines without a GPU.")
final class InfoCommand implements Runnable {

    @Override
    public void run() {
        PrintStream out = System.out;
        Runtime rt = Runtime.getRuntime();
        out.printf("facm-engine %s%n", new Main.Version().getVersion()[0].replace("facm-engine ", ""));
        out.printf("java       %s (%s), %d cores, max heap %s%n", System.getProperty("java.version"),
                System.getProperty("java.vendor"), rt.availableProcessors(), DeviceArena.human(rt.maxMemory()));
        KernelBuildInfo k = KernelBuildInfo.read();
        if (k.built()) {
            out.printf("kernels    %d modules %s; SASS %s, PTX compute_%d%s; %s%n", k.modules().size(), k.modules(),
                    k.sass().stream().map(s -> "sm_" + s).toList(), k.ptx(), k.ptxFiles() ? " (+ .ptx files)" : "",
                    k.nvcc());
        } else {
            out.printf("kernels    not built: %s%n", k.reason());
        }
        if (!Cuda.available()) {
            out.printf("gpu        none: %s%n", Cuda.unavailableReason());
            out.println("device     cpu (the default here)");
            return;
        }
        out.printf("driver     %s (CUDA %s)%n", NvidiaDriver.version(), Cuda.driverVersion());
        out.printf("cublasLt   %s%n", blasVersion());
        for (int i = 0; i < Cuda.deviceCount(); i++) {
            try (CudaDevice d = CudaDevice.open(i)) {
                int cc = d.computeCapability();
                boolean forced = KernelLibrary.forcePtxRequested();
                out.printf("gpu %d      %s, sm_%d, %d SMs, %s; kernels: %s%n", i, d.name(), cc, d.multiprocessors(),
                        DeviceArena.human(d.totalMemory()), forced ? k.forcedPtxPathFor(cc) : k.codePathFor(cc));
                if (k.built()) {
                    out.printf("           kernel families on gpu %d (variant per dtype, [code]):%n", i);
                    for (String line : VariantReport.lines(cc, k, forced)) {
                        out.println("             " + line);
                    }
                }
            }
        }
        out.println("device     " + (k.built() ? "cuda:0 (the default here)" : "cpu (the default here: no kernels)"));
    }

    private static String blasVersion() {
        try (CublasLt lt = CublasLt.open()) {
            int v = lt.version();
            return String.format("%d.%d.%d (%d) from %s", v / 10000, (v / 100) % 100, v % 100, v, lt.libraryPath());
        } catch (RuntimeException | LinkageError e) {
            return "unavailable: " + Main.oneLine(e);
        }
    }
}
