package facm.cuda;

import jcuda.Pointer;
import jcuda.driver.CUfunction;
import jcuda.driver.JCudaDriver;

/**
 * One {@code extern "C"} kernel with its declared parameter list. Every launch checks the Java arguments against the
 * declaration (count and kinds), checks the launch's return code, and with {@link Cuda#syncCheck()} on also
 * synchronizes and checks for a fault, so errors name the kernel that caused them.
 */
public final class Kernel {
    /** Upper bound on blocks for 1-D grid-stride launches: plenty to fill any current GPU. */
    private static final long MAX_1D_BLOCKS = 65_535L * 8;

    private final CudaDevice device;
    private final String name;
    private final CUfunction function;
    private final KernelArg[] signature;

    Kernel(CudaDevice device, String name, CUfunction function, KernelArg[] signature) {
        this.device = device;
        this.name = name;
        this.function = function;
        this.signature = signature.clone();
    }

    public String name() {
        return name;
    }

    public void launch(CudaStream stream, int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ,
                       int sharedBytes, Object... args) {
        if (gridX <= 0 || gridY <= 0 || gridZ <= 0 || blockX <= 0 || blockY <= 0 || blockZ <= 0) {
            throw new IllegalArgumentException("kernel " + name + ": bad launch grid (" + gridX + "," + gridY + ","
                    + gridZ + ") block (" + blockX + "," + blockY + "," + blockZ + ")");
        }
        Pointer params = pack(args);
        device.makeCurrent();
        int profiled = KernelProfile.on() ? KernelProfile.begin(stream) : KernelProfile.NOT_RECORDED;
        int r = JCudaDriver.cuLaunchKernel(function, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedBytes,
                stream.handle(), params, null);
        Cuda.check(r, "cuLaunchKernel(" + name + ", grid " + gridX + "x" + gridY + "x" + gridZ + ", block "
                + blockX + "x" + blockY + "x" + blockZ + ", smem " + sharedBytes + ")");
        KernelProfile.end(profiled, stream, name); // returns at once when the launch was not recorded
        if (Cuda.syncCheck()) {
            Cuda.check(JCudaDriver.cuStreamSynchronize(stream.handle()), "kernel " + name + " (checked after launch)");
        }
    }

    /** 1-D grid-stride launch over {@code elements} items; the kernel must loop with a grid stride. */
    public void launch1d(CudaStream stream, long elements, int blockSize, Object... args) {
        long blocks = Math.max(1, Math.min((elements + blockSize - 1) / blockSize, MAX_1D_BLOCKS));
        launch(stream, (int) blocks, 1, 1, blockSize, 1, 1, 0, args);
    }

    private Pointer pack(Object[] args) {
        if (args.length != signature.length) {
            throw new IllegalArgumentException("kernel " + name + " takes " + signature.length + " arguments "
                    + java.util.Arrays.toString(signature) + ", got " + args.length);
        }
        Pointer[] ps = new Pointer[args.length];
        for (int i = 0; i < args.length; i++) {
            Object a = args[i];
            KernelArg k = signature[i];
            ps[i] = switch (k) {
                case PTR -> {
                    if (a instanceof DeviceBuffer b) {
                        yield Pointer.to(new long[] {b.address()});
                    }
                    if (a instanceof Long l) {
                        yield Pointer.to(new long[] {l});
                    }
                    throw badArg(i, k, a);
                }
                case I64 -> {
                    if (a instanceof Long l) {
                        yield Pointer.to(new long[] {l});
                    }
                    throw badArg(i, k, a);
                }
                case I32 -> {
                    if (a instanceof Integer v) {
                        yield Pointer.to(new int[] {v});
                    }
                    throw badArg(i, k, a);
                }
                case F32 -> {
                    if (a instanceof Float v) {
                        yield Pointer.to(new float[] {v});
                    }
                    throw badArg(i, k, a);
                }
                case F64 -> {
                    if (a instanceof Double v) {
                        yield Pointer.to(new double[] {v});
                    }
                    throw badArg(i, k, a);
                }
            };
        }
        return Pointer.to(ps);
    }

    private IllegalArgumentException badArg(int i, KernelArg k, Object a) {
        return new IllegalArgumentException("kernel " + name + " argument " + i + " is " + k.name().toLowerCase(java.util.Locale.ROOT)
                + ", got " + (a == null ? "null" : a.getClass().getSimpleName() + " " + a));
    }

    @Override
    public String toString() {
        return name + java.util.Arrays.toString(signature);
    }
}
