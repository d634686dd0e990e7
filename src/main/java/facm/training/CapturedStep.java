package facm.training;

import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaDevice;
import facm.cuda.CudaGraph;
import facm.cuda.DeviceArena;
import facm.cuda.GraphMemoryPool;
import facm.tensor.Backend;

/**
 * The device side of a device-loss training step ({@code train --cuda-graph-step}, issue 7) as one CUDA graph: the
 * first step runs eagerly as usual (it makes the lazily created state that outlives a step, such as the cuBLASLt
 * workspace, op scratch and the teacher's bf16 weights, in the arena, not in the graph's pool), the second eagerly
 * inside a graph memory pool (the warm-up: it leaves every block a step allocates in the pool), the third is captured
 * (teacher passes, FM pass, JVP pass, backward, norm, AdamW, EMAs, step log) and launched, and every later step
 * is one replay. What the region does on the host runs once, at the capture: the region must read
 * nothing back and take every per-step value from device memory (the step state, the control tensor and the
 * counters), which is what the device-step path was built for. A step that breaks the capture fails with the
 * "not capturable:" CudaException naming the call. Backends other than CUDA, or capture off, run the region eagerly
 * each step (the CPU tests run the same code path that way).
 */
final class CapturedStep implements AutoCloseable {
    private static final String NAME = "training step";

    private final Runnable region;
    /** The CUDA backend when capturing; null: eager. */
    private final CudaBackend cuda;
    private boolean firstStepDone;
    private GraphMemoryPool pool;
    private CudaGraph graph;

    CapturedStep(Backend backend, boolean capture, Runnable region) {
        this.region = region;
        this.cuda = capture && backend instanceof CudaBackend c ? c : null;
    }

    /** One step: eager, the warm-up, the capture and its first replay, or a replay. */
    void run() {
        if (cuda == null || !firstStepDone) {
            region.run();
            firstStepDone = true;
            return;
        }
        CudaDevice device = cuda.cudaDevice();
        if (graph != null) {
            graph.launch();
            return;
        }
        DeviceArena arena = device.arena();
        if (pool == null) {
            pool = arena.newPool(NAME);
            try (DeviceArena.PoolScope scope = arena.usePool(pool)) {
                region.run();
            }
            device.stream().synchronize(); // a fault of the warm-up is reported here, not inside the capture
            return;
        }
        GraphMemoryPool owned = pool;
        pool = null; // the graph owns it from here on, also when the capture fails
        graph = CudaGraph.capture(NAME, device.stream(), owned, region);
        graph.launch();
    }

    /** Waits for the device, destroys the graph and releases its pool. */
    @Override
    public void close() {
        if (graph != null) {
            graph.close();
            graph = null;
        }
        if (pool != null) {
            pool.close();
            pool = null;
        }
    }
}
