package facm.backend.cuda;

import facm.cuda.CudaStream;
import facm.tensor.Bf16;
import facm.tensor.DType;
import facm.tensor.Shapes;
import facm.tensor.Tensor;

import java.lang.foreign.MemorySegment;

/**
 * {@link CudaBackend}'s uploads and downloads: the CPU reference's length and dtype checks, then a
 * {@link HostTransfers} copy on the backend's main stream (which waits for it).
 */
final class CudaTensorTransfers {
    private final CudaBackend backend;
    private final CudaStream stream;

    CudaTensorTransfers(CudaBackend backend, CudaStream stream) {
        this.backend = backend;
        this.stream = stream;
    }

    /** A new tensor of {@code dtype} holding {@code host}, a Java array of {@code length} elements. */
    CudaTensor upload(String op, String name, DType dtype, int[] shape, int length, MemorySegment host) {
        backend.requireOpenBackend(op);
        Shapes.requireHostLength(op, name, length, shape);
        CudaTensor t = backend.empty(name, dtype, shape);
        try {
            HostTransfers.toDevice(stream, host, t.buffer(), "upload " + t.describe());
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
        return t;
    }

    float[] download(Tensor t) {
        CudaTensor x = backend.require("download", t);
        Shapes.requireDType("download", x, DType.F32, DType.BF16);
        if (x.dtype() == DType.BF16) {
            return Bf16.toFloats(backend.downloadBf16(x));
        }
        float[] values = new float[HostTransfers.hostLength("download", x)];
        HostTransfers.toHost(stream, x.buffer(), MemorySegment.ofArray(values), "download " + x.describe());
        return values;
    }

    int[] downloadInts(Tensor t) {
        CudaTensor x = backend.require("downloadInts", t);
        Shapes.requireDType("downloadInts", x, DType.I32);
        int[] values = new int[HostTransfers.hostLength("downloadInts", x)];
        HostTransfers.toHost(stream, x.buffer(), MemorySegment.ofArray(values), "downloadInts " + x.describe());
        return values;
    }

    short[] downloadBf16(Tensor t) {
        CudaTensor x = backend.require("downloadBf16", t);
        Shapes.requireDType("downloadBf16", x, DType.BF16);
        short[] bits = new short[HostTransfers.hostLength("downloadBf16", x)];
        HostTransfers.toHost(stream, x.buffer(), MemorySegment.ofArray(bits), "downloadBf16 " + x.describe());
        return bits;
    }
}
