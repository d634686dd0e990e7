package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.cuda.Kernel;
import facm.cuda.KernelLibrary;

import static facm.cuda.KernelArg.I64;
import static facm.cuda.KernelArg.PTR;

/** Launchers for kernels/random.cu: element i of the output gets Philox counter {@code offset + i}. */
final class RandomKernels {
    private static final int BLOCK = 256;

    private final CudaStream stream;
    private final Kernel uniform;
    private final Kernel normal;

    RandomKernels(KernelLibrary lib, CudaStream stream) {
        this.stream = stream;
        uniform = lib.kernel("random_uniform_f32", PTR, I64, I64, I64);
        normal = lib.kernel("random_normal_f32", PTR, I64, I64, I64);
    }

    void uniform(long out, long n, long seed, long offset) {
        if (n > 0) {
            uniform.launch1d(stream, n, BLOCK, out, n, seed, offset);
        }
    }

    void normal(long out, long n, long seed, long offset) {
        if (n > 0) {
            normal.launch1d(stream, n, BLOCK, out, n, seed, offset);
        }
    }
}
