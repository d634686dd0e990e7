package facm.cuda.blas;

import static org.junit.jupiter.api.Assertions.assertTrue;

import facm.cuda.Cuda;
import facm.cuda.CudaDevice;
import facm.cuda.CudaEvent;
import facm.cuda.CudaTestSupport;
import facm.cuda.DeviceBuffer;
import facm.tensor.Bf16;
import java.util.Random;
import jcuda.Pointer;
import jcuda.driver.JCudaDriver;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * GEMM throughput and host cost per call, printed for comparison with PyTorch (the target is at least 70% of its
 * bf16 rate on H100; platform.md measured ~790 TFLOP/s peak-ish bf16 on these cards). Only a loose floor is asserted,
 * so that a catastrophic algorithm choice fails while ordinary noise does not.
 */
@Tag("gpu")
class CublasLtThroughputTest {

    @Test
    void largeProductsReachTensorCoreRates() {
        CudaDevice device = CudaTestSupport.device();
        boolean syncCheck = Cuda.syncCheck();
        Cuda.setSyncCheck(false); // a context synchronize after every GEMM would measure launch gaps, not the GEMM
        int size = 4096;
        long elements = (long) size * size;
        try (CublasLt lt = CublasLt.open();
             DeviceBuffer workspace = device.arena().allocate(CublasLt.RECOMMENDED_WORKSPACE_BYTES, "workspace");
             DeviceBuffer a32 = randomBuffer(device, elements, false, "A f32");
             DeviceBuffer b32 = randomBuffer(device, elements, false, "B f32");
             DeviceBuffer c32 = randomBuffer(device, elements, false, "C f32");
             DeviceBuffer a16 = randomBuffer(device, elements, true, "A bf16");
             DeviceBuffer b16 = randomBuffer(device, elements, true, "B bf16");
             DeviceBuffer c16 = randomBuffer(device, elements, true, "C bf16")) {
            StringBuilder report = new StringBuilder("[CublasLtThroughputTest] " + device + ", " + lt + "\n");
            double bf16Rate = 0;
            for (GemmKind kind : GemmKind.values()) {
                // x·Wᵀ, the linear-layer layout.
                RowMajorGemm g = RowMajorGemm.of(kind, false, true, size, size, size);
                boolean bf16In = kind.inputElementBytes() == 2;
                boolean bf16Out = kind.outputElementBytes() == 2;
                double tflops = measure(device, lt, g, bf16In ? a16 : a32, bf16In ? b16 : b32, bf16Out ? c16 : c32,
                        workspace, 20) / 1e12;
                report.append(String.format("  %-13s %dx%dx%d: %7.1f TFLOP/s%n", kind, size, size, size, tflops));
                if (kind == GemmKind.BF16_BF16OUT) {
                    bf16Rate = tflops;
                }
            }
            RowMajorGemm small = RowMajorGemm.of(GemmKind.BF16_BF16OUT, false, true, 64, 64, 64);
            lt.gemm(device.stream().address(), small, a16.address(), b16.address(), c16.address(),
                    workspace.address(), workspace.bytes());
            int calls = 500; // below the driver's queue depth, so the loop measures the host, not the GPU
            long start = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                lt.gemm(device.stream().address(), small, a16.address(), b16.address(), c16.address(),
                        workspace.address(), workspace.bytes());
            }
            double hostMicros = (System.nanoTime() - start) / 1e3 / calls;
            device.stream().synchronize();
            report.append(String.format("  host cost of a cached 64^3 bf16 gemm call: %.2f us%n", hostMicros));
            System.out.print(report);
            if (device.computeCapability() == 90) {
                assertTrue(bf16Rate > 300, "bf16 4096^3 GEMM at " + bf16Rate + " TFLOP/s on " + device
                        + ", far below the ~790 TFLOP/s these cards reach\n" + report);
            }
        } finally {
            Cuda.setSyncCheck(syncCheck);
        }
    }

    /** FLOP/s of {@code g} over {@code iterations} back-to-back runs after a warm-up, timed with CUDA events. */
    private static double measure(CudaDevice device, CublasLt lt, RowMajorGemm g, DeviceBuffer a, DeviceBuffer b,
                                  DeviceBuffer c, DeviceBuffer workspace, int iterations) {
        long stream = device.stream().address();
        for (int i = 0; i < 3; i++) {
            lt.gemm(stream, g, a.address(), b.address(), c.address(), workspace.address(), workspace.bytes());
        }
        try (CudaEvent start = CudaEvent.create(device); CudaEvent stop = CudaEvent.create(device)) {
            start.record(device.stream());
            for (int i = 0; i < iterations; i++) {
                lt.gemm(stream, g, a.address(), b.address(), c.address(), workspace.address(), workspace.bytes());
            }
            stop.record(device.stream());
            double seconds = stop.elapsedMillisSince(start) / 1e3;
            return g.flops() * iterations / seconds;
        }
    }

    /** Uniform values in ±0.1, so that tensor cores see realistic data rather than zeros. */
    private static DeviceBuffer randomBuffer(CudaDevice device, long elements, boolean bf16, String what) {
        Random random = new Random(what.hashCode());
        int count = Math.toIntExact(elements);
        long bytes = elements * (bf16 ? 2 : 4);
        Pointer host;
        if (bf16) {
            short[] values = new short[count];
            for (int i = 0; i < count; i++) {
                values[i] = Bf16.fromFloat((random.nextFloat() - 0.5f) * 0.2f);
            }
            host = Pointer.to(values);
        } else {
            float[] values = new float[count];
            for (int i = 0; i < count; i++) {
                values[i] = (random.nextFloat() - 0.5f) * 0.2f;
            }
            host = Pointer.to(values);
        }
        DeviceBuffer buffer = device.arena().allocate(bytes, "throughput test " + what);
        Cuda.check(JCudaDriver.cuMemcpyHtoD(buffer.ptr(), host, bytes), "cuMemcpyHtoD(" + what + ")");
        device.synchronize();
        return buffer;
    }
}
