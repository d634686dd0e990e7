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
 * the class path as a fatbin. From a fatbin the driver picks the best code for this GPU: SASS of the same major
 * architecture and the highest minor not above the GPU's, else it JIT-compiles the PTX (built for the oldest listed
 * architecture, so any newer GPU can run it). {@link KernelBuildInfo#codePathFor} states the same rule for reports.
 *
 * <p>With {@code --force-ptx} (system property {@value #FORCE_PTX_PROPERTY}{@code =true}, or environment
 * {@code FACM_KERNELS_FORCE_PTX=1}, read when a device first loads its kernels) each module is loaded from its plain
 * {@code <name>.ptx} instead, so the driver must JIT-compile everything: the path an unknown newer GPU takes, proven
 * on a card we have.
 */
public final class KernelLibrary {
    /** System property that makes every device load the PTX only (see the class comment). */
    public static final String FORCE_PTX_PROPERTY = "facm.kernels.forcePtx";

    private final CudaDevice device;
    private final KernelBuildInfo info;
    private final boolean forcePtx;
    private final Map<String, CUmodule> modules = new LinkedHashMap<>();
    private final Map<String, Kernel> kernels = new LinkedHashMap<>();

    private KernelLibrary(CudaDevice device, KernelBuildInfo info, boolean forcePtx) {
        this.device = device;
        this.info = info;
        this.forcePtx = forcePtx;
    }

    /** True when kernels are to be loaded from the PTX only (property or environment, see the class comment). */
    public static boolean forcePtxRequested() {
        return Boolean.parseBoolean(System.getProperty(FORCE_PTX_PROPERTY, "false"))
                || "1".equals(System.getenv("FACM_KERNELS_FORCE_PTX"));
    }

    static KernelLibrary load(CudaDevice device) {
        KernelBuildInfo info = KernelBuildInfo.read();
        if (!info.built()) {
            throw new CudaUnavailableException(info.notBuiltMessage());
        }
        boolean forcePtx = forcePtxRequested();
        if (forcePtx) {
            String path = info.forcedPtxPathFor(device.computeCapability());
            if (path.startsWith("none")) {
                throw new CudaUnavailableException("--force-ptx: the kernels in this jar cannot be loaded as PTX on "
                        + device + " (sm_" + device.computeCapability() + "): " + path);
            }
        } else if (!info.runsOn(device.computeCapability())) {
            throw new CudaUnavailableException("the kernels in this jar cannot run on " + device + " (sm_"
                    + device.computeCapability() + "): " + info.codePathFor(device.computeCapability())
                    + "; rebuild with -Dcuda.archs including " + device.computeCapability());
        }
        KernelLibrary lib = new KernelLibrary(device, info, forcePtx);
        device.makeCurrent();
        for (String m : info.modules()) {
            lib.modules.put(m, lib.loadModule(m));
        }
        return lib;
    }

    private CUmodule loadModule(String name) {
        String file = name + (forcePtx ? ".ptx" : ".fatbin");
        String res = "/facm/kernels/" + file;
        byte[] image;
        try (InputStream in = KernelLibrary.class.getResourceAsStream(res)) {
            if (in == null) {
                throw new CudaUnavailableException("kernel module " + res + " is listed in kernels.properties but missing from the jar");
            }
            image = in.readAllBytes();
        } catch (IOException e) {
            throw new CudaUnavailableException("cannot read kernel module " + res + ": " + e.getMessage());
        }
        if (forcePtx) {
            image = java.util.Arrays.copyOf(image, image.length + 1); // PTX text must end in a NUL byte
        }
        CUmodule module = new CUmodule();
        int r = JCudaDriver.cuModuleLoadData(module, image);
        if (r != CUresult.CUDA_SUCCESS && forcePtx) {
            throw new CudaException("cuModuleLoadData(" + file + " on " + device + ", PTX JIT) failed: "
                    + Cuda.errorName(r) + " (CUDA_ERROR_UNSUPPORTED_PTX_VERSION means the driver is older than the"
                    + " nvcc that built the jar: " + info.nvcc() + ")");
        }
        Cuda.check(r, "cuModuleLoadData(" + file + " on " + device + ")");
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

    /** How this library runs on a GPU of that compute capability: the fatbin rule, or the forced PTX. */
    /** The compute capability of the device this library loads for (e.g. 90), for per-architecture launch tuning. */
    public int computeCapability() {
        return device.computeCapability();
    }

    public String codePathFor(int computeCapability) {
        return forcePtx ? info.forcedPtxPathFor(computeCapability) : info.codePathFor(computeCapability);
    }

    /** How the kernels run on this library's device, e.g. "SASS sm_90" or "PTX compute_80 (JIT by the driver, forced)". */
    public String codePath() {
        return codePathFor(device.computeCapability());
    }

    /** True when the modules were loaded from their PTX ({@code --force-ptx}). */
    public boolean ptxForced() {
        return forcePtx;
    }

    /** The modules loaded (one per kernels/*.cu), in load order. */
    public java.util.List<String> moduleNames() {
        return java.util.List.copyOf(modules.keySet());
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
