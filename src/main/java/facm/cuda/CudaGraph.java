package facm.cuda;

import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUresult;
import jcuda.driver.CUstreamCaptureMode;
import jcuda.driver.JCudaDriver;

/**
 * A CUDA graph recorded by stream capture and instantiated once, then replayed with one {@code cuGraphLaunch}: the
 * whole region's kernels and copies run again with the same arguments, the same device addresses and the same
 * scalars, without the host-side cost of each launch (~5 µs per kernel from Java). Inputs are changed by writing into
 * the buffers the region read (static inputs), results are read from the buffers it wrote (static outputs).
 *
 * <p><b>Capture.</b> {@link #capture} runs the region on the calling thread with the stream in capture mode
 * (CU_STREAM_CAPTURE_MODE_THREAD_LOCAL, so other threads are unaffected) and the given {@link GraphMemoryPool}
 * active, so every block the region allocates belongs to the pool and no driver allocation happens (run the region
 * once in the same pool before, so the pool already holds the blocks). What cannot be captured fails with a
 * CudaException whose message starts "not capturable:" (a synchronize, a transfer to or from pageable host memory, an
 * allocation the pool and cache cannot serve); the capture is then ended, nothing is left half-built, and the pool is
 * released.
 *
 * <p><b>Ownership.</b> The graph owns the pool it was captured with: {@link #close()} waits for the stream, destroys
 * the executable graph and the graph, and releases the pool (its blocks go back to the arena's cache). Close every
 * static input the region reads only after the graph.
 */
public final class CudaGraph implements AutoCloseable {
    private final String name;
    private final CudaStream stream;
    private final GraphMemoryPool pool;
    private final CUgraph graph;
    private final CUgraphExec exec;
    private final long nodeCount;
    private long launches;
    private boolean closed;

    private CudaGraph(String name, CudaStream stream, GraphMemoryPool pool, CUgraph graph, CUgraphExec exec,
                      long nodeCount) {
        this.name = name;
        this.stream = stream;
        this.pool = pool;
        this.graph = graph;
        this.exec = exec;
        this.nodeCount = nodeCount;
    }

    /** True while the calling thread is capturing a graph (then synchronizing or host transfers are refused). */
    public static boolean capturing() {
        return CaptureState.active();
    }

    /**
     * Throws "not capturable: {@code op}" when the calling thread is capturing. For code outside this package that
     * is about to do something a graph cannot record (e.g. a host transfer through pageable memory).
     */
    public static void requireNotCapturing(String op) {
        CaptureState.refuse(op);
    }

    /**
     * Captures {@code region} as it runs on {@code stream} (it must queue all its work on that stream) with
     * {@code pool} active, and instantiates the graph. The graph owns the pool from here on, also when the capture
     * fails (the pool is then released before the error is thrown).
     */
    public static CudaGraph capture(String name, CudaStream stream, GraphMemoryPool pool, Runnable region) {
        CudaDevice device = stream.device();
        DeviceArena arena = pool.arena();
        if (arena != device.arena()) {
            pool.close();
            throw new IllegalArgumentException("capture of CUDA graph '" + name + "': " + pool + " is not of "
                    + device + "'s arena");
        }
        device.makeCurrent();
        CUgraph graph = new CUgraph();
        boolean graphMade = false;
        try {
            CaptureState.enter(name);
            try (DeviceArena.PoolScope scope = arena.usePool(pool)) {
                Cuda.check(JCudaDriver.cuStreamBeginCapture(stream.handle(),
                        CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture('" + name + "')");
                RuntimeException failure = null;
                try {
                    region.run();
                } catch (RuntimeException e) {
                    failure = e;
                } catch (Error e) {
                    endCaptureQuietly(stream, graph);
                    throw e;
                }
                int r = JCudaDriver.cuStreamEndCapture(stream.handle(), graph);
                graphMade = r == CUresult.CUDA_SUCCESS;
                if (failure != null) {
                    throw failure;
                }
                if (r != CUresult.CUDA_SUCCESS) {
                    throw new CudaException(r, "not capturable: cuStreamEndCapture('" + name + "') failed: "
                            + Cuda.errorName(r) + " (an operation of the region broke the capture: a synchronize, a "
                            + "transfer through pageable host memory, a driver allocation, or work joined from "
                            + "another stream)");
                }
            } finally {
                CaptureState.exit();
            }
            CUgraphExec exec = new CUgraphExec();
            Cuda.check(JCudaDriver.cuGraphInstantiate(exec, graph, 0L), "cuGraphInstantiate('" + name + "')");
            long[] nodes = new long[1];
            Cuda.check(JCudaDriver.cuGraphGetNodes(graph, null, nodes), "cuGraphGetNodes('" + name + "')");
            return new CudaGraph(name, stream, pool, graph, exec, nodes[0]);
        } catch (RuntimeException | Error e) {
            if (graphMade) {
                JCudaDriver.cuGraphDestroy(graph);
            }
            pool.close();
            throw e;
        }
    }

    /** Ends a capture after a fatal error in the region, ignoring what the driver says: the error is reported. */
    private static void endCaptureQuietly(CudaStream stream, CUgraph graph) {
        int r = JCudaDriver.cuStreamEndCapture(stream.handle(), graph);
        if (r == CUresult.CUDA_SUCCESS) {
            JCudaDriver.cuGraphDestroy(graph);
        }
    }

    /** Queues one replay on the stream the graph was captured on. */
    public void launch() {
        launch(stream);
    }

    /** Queues one replay on {@code on} (a stream of the same device). */
    public void launch(CudaStream on) {
        if (closed) {
            throw new IllegalStateException("CUDA graph '" + name + "' was closed");
        }
        if (on.device() != stream.device()) {
            throw new IllegalArgumentException("CUDA graph '" + name + "' of " + stream.device()
                    + " cannot be launched on a stream of " + on.device());
        }
        CaptureState.refuse("cuGraphLaunch('" + name + "')");
        on.device().makeCurrent();
        Cuda.check(JCudaDriver.cuGraphLaunch(exec, on.handle()), "cuGraphLaunch('" + name + "')");
        launches++;
        if (Cuda.syncCheck()) {
            Cuda.check(JCudaDriver.cuStreamSynchronize(on.handle()), "CUDA graph '" + name
                    + "' (" + nodeCount + " nodes, checked after launch " + launches + ")");
        }
    }

    public String name() {
        return name;
    }

    /** Nodes (kernels, copies, memsets) in the captured graph. */
    public long nodeCount() {
        return nodeCount;
    }

    /** How many times {@link #launch} ran. */
    public long launches() {
        return launches;
    }

    /** The pool that holds the graph's memory (released by {@link #close()}). */
    public GraphMemoryPool pool() {
        return pool;
    }

    public boolean isClosed() {
        return closed;
    }

    /** Waits for the stream, destroys the graph and releases its pool. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        CudaDevice device = stream.device();
        device.makeCurrent();
        try {
            stream.synchronize();
            Cuda.check(JCudaDriver.cuGraphExecDestroy(exec), "cuGraphExecDestroy('" + name + "')");
            Cuda.check(JCudaDriver.cuGraphDestroy(graph), "cuGraphDestroy('" + name + "')");
        } finally {
            pool.close();
        }
    }

    @Override
    public String toString() {
        return "CUDA graph '" + name + "' (" + nodeCount + " nodes, " + DeviceArena.human(pool.heldBytes()) + " pool)";
    }
}
