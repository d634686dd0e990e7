package facm.distributed.nccl;

import facm.backend.cuda.CudaBackend;
import facm.backend.cuda.CudaTensor;
import facm.cuda.Cuda;
import facm.tensor.DType;
import facm.tensor.Tensor;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * ZeRO-1's collectives on CUDA ({@link facm.distributed.ShardLayout}), all on the compute stream: a bucket's
 * tensors are packed into one zero-padded staging buffer of W·chunk floats (device copies), reduce-scattered with
 * ncclAvg into the rank's shard, and after the update the shard is all-gathered into a staging buffer and unpacked
 * into the tensors. The staging buffer comes from the device arena per call (the arena caches it).
 */
final class ShardCollectives {
    private final NcclLibrary nccl;
    private final MemorySegment comm;
    private final CudaBackend backend;
    private final int rank;
    private final int worldSize;

    ShardCollectives(NcclLibrary nccl, MemorySegment comm, CudaBackend backend, int rank, int worldSize) {
        this.nccl = nccl;
        this.comm = comm;
        this.backend = backend;
        this.rank = rank;
        this.worldSize = worldSize;
    }

    private CUstream stream() {
        return backend.cudaDevice().stream().handle();
    }

    private CudaTensor f32(String op, Tensor t) {
        CudaTensor c = backend.require(op, t);
        if (c.dtype() != DType.F32) {
            throw new IllegalArgumentException(op + ": only F32 tensors, got " + t.describe());
        }
        return c;
    }

    private static CUdeviceptr at(CudaTensor t, long floatOffset) {
        return t.buffer().ptr().withByteOffset(floatOffset * Float.BYTES);
    }

    private void requireRange(String op, CudaTensor shard, long offset, int chunk) {
        if (offset < 0 || offset + chunk > shard.numel()) {
            throw new IllegalArgumentException(op + ": chunk [" + offset + ", " + (offset + chunk) + ") outside "
                    + shard.describe());
        }
    }

    private void copy(CUdeviceptr dst, CUdeviceptr src, long floats, String what) {
        if (floats > 0) {
            Cuda.check(JCudaDriver.cuMemcpyDtoDAsync(dst, src, floats * Float.BYTES, stream()),
                    "cuMemcpyDtoDAsync(" + what + ", " + floats + " floats)");
        }
    }

    void reduceScatterMean(List<Tensor> bucket, int chunk, Tensor shard, long shardOffset) {
        backend.cudaDevice().makeCurrent();
        CudaTensor out = f32("reduce-scatter", shard);
        requireRange("reduce-scatter", out, shardOffset, chunk);
        long padded = (long) worldSize * chunk;
        try (CudaTensor staging = backend.empty("zero1 staging", DType.F32, Math.toIntExact(padded))) {
            long at = 0;
            for (Tensor t : bucket) {
                CudaTensor c = f32("reduce-scatter", t);
                copy(at(staging, at), c.buffer().ptr(), c.numel(), "pack " + c.name());
                at += c.numel();
            }
            if (at > padded) {
                throw new IllegalArgumentException("reduce-scatter: the bucket holds " + at + " values, more than "
                        + worldSize + " x " + chunk);
            }
            if (at < padded) {
                Cuda.check(JCudaDriver.cuMemsetD32Async(at(staging, at), 0, padded - at, stream()),
                        "cuMemsetD32Async(zero1 padding)");
            }
            nccl.reduceScatter(staging.address(), out.address() + shardOffset * Float.BYTES, chunk,
                    NcclLibrary.NCCL_AVG, comm, backend.cudaDevice().stream().address());
        }
    }

    void allGather(Tensor shard, long shardOffset, int chunk, List<Tensor> bucket) {
        backend.cudaDevice().makeCurrent();
        CudaTensor in = f32("all-gather", shard);
        requireRange("all-gather", in, shardOffset, chunk);
        long padded = (long) worldSize * chunk;
        try (CudaTensor staging = backend.empty("zero1 staging", DType.F32, Math.toIntExact(padded))) {
            nccl.allGather(in.address() + shardOffset * Float.BYTES, staging.address(), chunk, comm,
                    backend.cudaDevice().stream().address());
            long at = 0;
            for (Tensor t : bucket) {
                CudaTensor c = f32("all-gather", t);
                copy(c.buffer().ptr(), at(staging, at), c.numel(), "unpack " + c.name());
                at += c.numel();
            }
        }
    }

    /** The overlap of each tensor's range in the bucket with [rank·chunk, (rank+1)·chunk), copied into the shard. */
    void copyOwnChunk(List<Tensor> bucket, int chunk, Tensor shard, long shardOffset) {
        backend.cudaDevice().makeCurrent();
        CudaTensor out = f32("shard copy", shard);
        requireRange("shard copy", out, shardOffset, chunk);
        long lo = (long) rank * chunk;
        long hi = lo + chunk;
        long at = 0;
        for (Tensor t : bucket) {
            CudaTensor c = f32("shard copy", t);
            long from = Math.max(at, lo);
            long to = Math.min(at + c.numel(), hi);
            if (from < to) {
                copy(at(out, shardOffset + from - lo), at(c, from - at), to - from, "shard of " + c.name());
            }
            at += c.numel();
        }
    }
}
