package facm.distributed.nccl;

import facm.distributed.DistributedException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Hand-written FFM bindings for the few NCCL entry points data-parallel training uses (nccl.h of NCCL 2.x; every
 * function returns an ncclResult_t, 0 = success). Loads {@code libnccl.so.2} from the host: {@code FACM_NCCL_LIBRARY}
 * when set, else the loader's search path, else /usr/lib/x86_64-linux-gnu. NVLink multicast (NVLS) is switched off
 * with {@code NCCL_NVLS_ENABLE=0} in the process environment before the library is first used: our hosts must never
 * create multicast objects.
 */
public final class NcclLibrary {
    /** sizeof(ncclUniqueId): a struct { char internal[128]; }, passed BY VALUE to ncclCommInitRank. */
    public static final int UNIQUE_ID_BYTES = 128;
    static final MemoryLayout UNIQUE_ID = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(UNIQUE_ID_BYTES, ValueLayout.JAVA_BYTE));

    /** ncclDataType_t and ncclRedOp_t values of nccl.h. */
    static final int NCCL_FLOAT32 = 7;
    static final int NCCL_SUM = 0;
    static final int NCCL_AVG = 4;
    /** ncclResult_t: ncclInProgress, reported while a non-blocking operation is still running. */
    static final int NCCL_IN_PROGRESS = 7;

    private static volatile NcclLibrary instance;

    private final String path;
    private final MethodHandle getVersion;
    private final MethodHandle getUniqueId;
    private final MethodHandle commInitRank;
    private final MethodHandle allReduce;
    private final MethodHandle broadcast;
    private final MethodHandle reduceScatter;
    private final MethodHandle allGather;
    private final MethodHandle groupStart;
    private final MethodHandle groupEnd;
    private final MethodHandle getErrorString;
    private final MethodHandle commGetAsyncError;
    private final MethodHandle commAbort;
    private final MethodHandle commDestroy;

    private NcclLibrary(String path, SymbolLookup lib) {
        this.path = path;
        Linker linker = Linker.nativeLinker();
        getVersion = bind(linker, lib, "ncclGetVersion", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        getUniqueId = bind(linker, lib, "ncclGetUniqueId", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        commInitRank = bind(linker, lib, "ncclCommInitRank",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, UNIQUE_ID, JAVA_INT));
        // (sendbuff, recvbuff, count, datatype, op, comm, stream)
        allReduce = bind(linker, lib, "ncclAllReduce",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS,
                        JAVA_LONG));
        // (sendbuff, recvbuff, count, datatype, root, comm, stream)
        broadcast = bind(linker, lib, "ncclBroadcast",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS,
                        JAVA_LONG));
        // (sendbuff, recvbuff, recvcount, datatype, op, comm, stream)
        reduceScatter = bind(linker, lib, "ncclReduceScatter",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS,
                        JAVA_LONG));
        // (sendbuff, recvbuff, sendcount, datatype, comm, stream)
        allGather = bind(linker, lib, "ncclAllGather",
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
        groupStart = bind(linker, lib, "ncclGroupStart", FunctionDescriptor.of(JAVA_INT));
        groupEnd = bind(linker, lib, "ncclGroupEnd", FunctionDescriptor.of(JAVA_INT));
        getErrorString = bind(linker, lib, "ncclGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        commGetAsyncError = bind(linker, lib, "ncclCommGetAsyncError",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        commAbort = bind(linker, lib, "ncclCommAbort", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        commDestroy = bind(linker, lib, "ncclCommDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /** The host's NCCL, loaded once; a {@link DistributedException} naming every place tried when there is none. */
    public static NcclLibrary load() {
        NcclLibrary l = instance;
        if (l != null) {
            return l;
        }
        synchronized (NcclLibrary.class) {
            if (instance == null) {
                ProcessEnvironment.set("NCCL_NVLS_ENABLE", "0");
                instance = open();
            }
            return instance;
        }
    }

    private static NcclLibrary open() {
        List<String> tried = new ArrayList<>();
        String override = System.getenv("FACM_NCCL_LIBRARY");
        List<String> candidates = override != null ? List.of(override)
                : List.of("libnccl.so.2", "/usr/lib/x86_64-linux-gnu/libnccl.so.2", "/usr/local/cuda/lib64/libnccl.so.2",
                "libnccl.so");
        for (String c : candidates) {
            try {
                SymbolLookup lib = c.contains("/") ? SymbolLookup.libraryLookup(Path.of(c), Arena.global())
                        : SymbolLookup.libraryLookup(c, Arena.global());
                return new NcclLibrary(c, lib);
            } catch (IllegalArgumentException | UnsatisfiedLinkError e) {
                tried.add(c + (c.contains("/") && !Files.exists(Path.of(c)) ? " (no such file)" : " (" + e.getMessage()
                        + ")"));
            }
        }
        throw new DistributedException("NCCL is not available: could not load " + String.join(", ", tried)
                + " (install NCCL 2.x or set FACM_NCCL_LIBRARY to libnccl.so.2)");
    }

    private static MethodHandle bind(Linker linker, SymbolLookup lib, String name, FunctionDescriptor fd) {
        MemorySegment sym = lib.find(name).orElseThrow(() -> new DistributedException("NCCL library lacks " + name
                + " (too old? NCCL >= 2.12 is needed)"));
        return linker.downcallHandle(sym, fd);
    }

    public String path() {
        return path;
    }

    /** e.g. 22803 for 2.28.3. */
    public int version() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check((int) getVersion.invokeExact(v), "ncclGetVersion");
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t, "ncclGetVersion");
        }
    }

    /** "2.28.3" from 22803 (NCCL ≥ 2.9 encodes major·10000 + minor·100 + patch). */
    public static String versionString(int code) {
        return code / 10000 + "." + (code / 100) % 100 + "." + code % 100;
    }

    /** A fresh ncclUniqueId (rank 0 calls this and sends the bytes to everyone). */
    public byte[] uniqueId() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment id = a.allocate(UNIQUE_ID);
            check((int) getUniqueId.invokeExact(id), "ncclGetUniqueId");
            return id.toArray(ValueLayout.JAVA_BYTE);
        } catch (Throwable t) {
            throw rethrow(t, "ncclGetUniqueId");
        }
    }

    /** ncclCommInitRank on the calling thread's current CUDA device; returns the ncclComm_t. */
    public MemorySegment commInitRank(int worldSize, byte[] uniqueId, int rank) {
        if (uniqueId.length != UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("NCCL unique id must be " + UNIQUE_ID_BYTES + " bytes, got "
                    + uniqueId.length);
        }
        String call = "ncclCommInitRank(nranks=" + worldSize + ", rank=" + rank + ")";
        try (Arena a = Arena.ofConfined()) {
            MemorySegment comm = a.allocate(ADDRESS);
            MemorySegment id = a.allocate(UNIQUE_ID);
            MemorySegment.copy(uniqueId, 0, id, ValueLayout.JAVA_BYTE, 0, UNIQUE_ID_BYTES);
            check((int) commInitRank.invokeExact(comm, worldSize, id, rank), call);
            return comm.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t, call);
        }
    }

    public void allReduce(long send, long recv, long count, int op, MemorySegment comm, long stream) {
        checked("ncclAllReduce(" + count + " floats)",
                () -> (int) allReduce.invokeExact(send, recv, count, NCCL_FLOAT32, op, comm, stream));
    }

    public void broadcast(long send, long recv, long count, int root, MemorySegment comm, long stream) {
        checked("ncclBroadcast(" + count + " floats)",
                () -> (int) broadcast.invokeExact(send, recv, count, NCCL_FLOAT32, root, comm, stream));
    }

    /** recv[recvCount] = op over ranks of send[rank·recvCount, (rank+1)·recvCount); send holds ranks·recvCount floats. */
    public void reduceScatter(long send, long recv, long recvCount, int op, MemorySegment comm, long stream) {
        checked("ncclReduceScatter(" + recvCount + " floats per rank)",
                () -> (int) reduceScatter.invokeExact(send, recv, recvCount, NCCL_FLOAT32, op, comm, stream));
    }

    /** recv[r·sendCount, (r+1)·sendCount) = rank r's send[sendCount], for every rank r. */
    public void allGather(long send, long recv, long sendCount, MemorySegment comm, long stream) {
        checked("ncclAllGather(" + sendCount + " floats per rank)",
                () -> (int) allGather.invokeExact(send, recv, sendCount, NCCL_FLOAT32, comm, stream));
    }

    public void groupStart() {
        checked("ncclGroupStart", () -> (int) groupStart.invokeExact());
    }

    public void groupEnd() {
        checked("ncclGroupEnd", () -> (int) groupEnd.invokeExact());
    }

    /** The communicator's asynchronous error (0 when none; safe to poll from a watchdog thread). */
    public int asyncError(MemorySegment comm) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment r = a.allocate(JAVA_INT);
            check((int) commGetAsyncError.invokeExact(comm, r), "ncclCommGetAsyncError");
            return r.get(JAVA_INT, 0);
        } catch (Throwable t) {
            throw rethrow(t, "ncclCommGetAsyncError");
        }
    }

    /** Aborts every operation in flight on {@code comm} and frees it; unblocks a thread stuck in a collective. */
    public int abort(MemorySegment comm) {
        try {
            return (int) commAbort.invokeExact(comm);
        } catch (Throwable t) {
            throw rethrow(t, "ncclCommAbort");
        }
    }

    public int destroy(MemorySegment comm) {
        try {
            return (int) commDestroy.invokeExact(comm);
        } catch (Throwable t) {
            throw rethrow(t, "ncclCommDestroy");
        }
    }

    /** e.g. "remote process exited or there was a network error" for ncclRemoteError. */
    public String errorString(int result) {
        try {
            MemorySegment s = (MemorySegment) getErrorString.invokeExact(result);
            return s.equals(MemorySegment.NULL) ? "ncclResult " + result : s.reinterpret(1024).getString(0);
        } catch (Throwable t) {
            return "ncclResult " + result;
        }
    }

    /** Throws a {@link DistributedException} naming the call and NCCL's error string when {@code result != 0}. */
    public void check(int result, String call) {
        if (result != 0) {
            throw new DistributedException(call + " failed: " + errorName(result) + " (" + errorString(result) + ")");
        }
    }

    static String errorName(int result) {
        return switch (result) {
            case 1 -> "ncclUnhandledCudaError";
            case 2 -> "ncclSystemError";
            case 3 -> "ncclInternalError";
            case 4 -> "ncclInvalidArgument";
            case 5 -> "ncclInvalidUsage";
            case 6 -> "ncclRemoteError";
            case 7 -> "ncclInProgress";
            default -> "ncclResult " + result;
        };
    }

    /** A downcall returning an ncclResult_t. */
    @FunctionalInterface
    private interface NcclCall {
        int invoke() throws Throwable;
    }

    /** Runs the downcall and {@link #check}s its result; a checked throwable becomes a DistributedException. */
    private void checked(String call, NcclCall downcall) {
        try {
            check(downcall.invoke(), call);
        } catch (Throwable t) {
            throw rethrow(t, call);
        }
    }

    private static RuntimeException rethrow(Throwable t, String call) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new DistributedException(call + " failed: " + t, t);
    }
}
