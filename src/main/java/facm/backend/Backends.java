package facm.backend;

import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.Cuda;
import facm.cuda.KernelBuildInfo;
import facm.tensor.Backend;
import facm.tensor.Device;

/**
 * Chooses the backend for {@code --device cpu|cuda|cuda:N|auto}. {@code auto} takes cuda:0 when a GPU and the
 * kernels are present, else the CPU, and {@link Selection#why()} says which and why so every run can print it.
 */
public final class Backends {
    private Backends() {
    }

    public record Selection(Backend backend, String why) {
    }

    public static Selection select(String spec) {
        if (spec == null || spec.isBlank() || spec.trim().equalsIgnoreCase("auto")) {
            KernelBuildInfo k = KernelBuildInfo.read();
            if (!Cuda.available()) {
                return new Selection(new CpuBackend(), "cpu (no GPU: " + Cuda.unavailableReason() + ")");
            }
            if (!k.built()) {
                return new Selection(new CpuBackend(), "cpu (a GPU is present but " + k.notBuiltMessage() + ")");
            }
            CudaBackend b = CudaBackend.open(0);
            return new Selection(b, b.describe());
        }
        Device d = Device.parse(spec);
        if (d.kind() == Device.Kind.CPU) {
            CpuBackend b = new CpuBackend();
            return new Selection(b, b.describe());
        }
        CudaBackend b = CudaBackend.open(d.index());
        return new Selection(b, b.describe());
    }

    public static Backend open(String spec) {
        return select(spec).backend();
    }
}
