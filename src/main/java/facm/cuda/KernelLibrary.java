package facm.cuda;

import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

import java.io.IOException;
import java.io.InputStream;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The kernels of this jar loaded into one device's context: one CUDA module per {@code kernels/<name>.cu}, read from
 * the class path as a fatbin (the driver picks the SASS for this GPU or JIT-compiles the PTX).
 */
public final class KernelLibrary {
    private final CudaDevice device;
    private final KernelBuildInfo info;
    private final Map<String, CUmodule> modules = new LinkedHashMap<>();
    private final Map<String, Kernel> kernels = new LinkedHashMap<>();

    private KernelLibrary(CudaDevice device, KernelBuildInfo info) {
        this.device = device;
        this.info = info;
    }

    static KernelLibrary load(CudaDevice device) {
        KernelBuildInfo info = KernelBuildInfo.read();
        if (!info.built()) {
            throw new CudaUnavailableException(info.notBuiltMessage());
        }
        if (!info.runsOn(device.computeCapability())) {
            throw new CudaUnavailableException("the kernels in this jar cannot run on " + device + " (sm_"
                    + device.computeCapability() + "): " + info.codePathFor(device.computeCapability())
                    + "; rebuild with -Dcuda.archs including " + device.computeCapability());
        }
        KernelLibrary lib = new KernelLibrary(device, info);
        device.makeCurrent();
        for (String m : info.modules()) {
            lib.modules.put(m, lib.loadModule(m));
        }
        return lib;
    }

    private CUmodule loadModule(String name) {
        String res = "/facm/kernels/" + name + ".fatbin";
        byte[] image;
        try (InputStream in = KernelLibrary.class.getResourceAsStream(res)) {
            if (in == null) {
                throw new CudaUnavailableException("kernel module " + res + " is listed in kernels.properties but missing from the jar");
            }
            image = in.readAllBytes();
        } catch (IOException e) {
            throw new CudaUnavailableException("cannot read kernel module " + res + ": " + e.getMessage());
        }
        CUmodule module = new CUmodule();
        Cuda.check(JCudaDriver.cuModuleLoadData(module, image), "cuModuleLoadData(" + name + ".fatbin on " + device + ")");
        return module;
    }

    /** The kernel {@code name} (from any module) with its declared parameter kinds; cached. */
    public synchronized Kernel kernel(String name, KernelArg... signature) {
        Kernel k = kernels.get(name);
        if (k != null) {
            return k;
        }
        device.makeCurrent();
        for (Map.Entry<String, CUmodule> e : modules.entrySet()) {
            AddressableFunction f = new AddressableFunction();
            int r = JCudaDriver.cuModuleGetFunction(f, e.getValue(), name);
            if (r == CUresult.CUDA_SUCCESS) {
                KernelParams.verify(name, f.address(), signature);
                k = new Kernel(device, name, f, signature);
                kernels.put(name, k);
                return k;
            }
            if (r != CUresult.CUDA_ERROR_NOT_FOUND) {
                Cuda.check(r, "cuModuleGetFunction(" + name + " in " + e.getKey() + ")");
            }
        }
        throw new CudaException("kernel '" + name + "' is not in any module of this jar (modules: " + modules.keySet() + ")");
    }

    /** JCuda keeps the CUfunction handle protected; the parameter check needs the number. */
    private static final class AddressableFunction extends CUfunction {
        long address() {
            return getNativePointer();
        }
    }

    public KernelBuildInfo buildInfo() {
        return info;
    }

    public String codePathFor(int computeCapability) {
        return info.codePathFor(computeCapability);
    }

    void unload() {
        device.makeCurrent();
        for (CUmodule m : modules.values()) {
            JCudaDriver.cuModuleUnload(m);
        }
        modules.clear();
        kernels.clear();
    }
}
