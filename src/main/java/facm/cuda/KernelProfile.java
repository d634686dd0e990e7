package facm.cuda;

import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstreamCaptureStatus;
import jcuda.driver.JCudaDriver;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A per-kernel GPU time profile from CUDA events: while on, every {@link Kernel#launch} and every cuBLASLt product
 * (facm.backend.cuda.CudaGemm) records an event before and after itself on the stream it is queued on, and
 * {@link #report} resolves the pairs into GPU milliseconds per label (the kernel's name, or the GEMM's shape) with
 * {@link KernelTimeTable}. Nothing else (copies, memsets, CUDA graph replays) is timed: it shows as the difference
 * between the sum of kernel times and the wall time from the first event to the last.
 *
 * <p>Off by default; on with {@code -Dfacm.cuda.kernelProfile=true} or {@link #enable()}. Off, a launch pays one
 * volatile read. On, a launch pays two cuEventRecord calls (about a microsecond each on the host) and no allocation
 * once the event pool has grown: {@link #reset()} keeps the events, so a warm-up grows the pool and the measured runs
 * reuse it. Nothing is recorded inside a stream capture (a CUDA graph's events would be nodes, not timestamps):
 * neither while this thread captures ({@link CaptureState}) nor when the stream reports a capture.
 *
 * <p>Several threads may launch (one per GPU in data-parallel training); bookkeeping is serialized on this class.
 * Reset and report while no other thread is between a launch's two events.
 */
public final class KernelProfile {
    /** {@link #begin} returns this when the launch is not timed. */
    public static final int NOT_RECORDED = -1;
    public static final String PROPERTY = "facm.cuda.kernelProfile";
    /** At most this many timed launches between resets (two events each), so a forgotten profile cannot grow forever. */
    static final int MAX_RECORDS = 1 << 20;

    private static volatile boolean on = Boolean.getBoolean(PROPERTY);

    /** One launch's event pair, reused after {@link #reset()}; events belong to {@code device}'s context. */
    private static final class Slot {
        final CudaDevice device;
        final CUevent start = new CUevent();
        final CUevent end = new CUevent();
        String label;

        Slot(CudaDevice device) {
            this.device = device;
            device.makeCurrent();
            Cuda.check(JCudaDriver.cuEventCreate(start, CUevent_flags.CU_EVENT_DEFAULT),
                    "cuEventCreate (kernel profile, " + device + ")");
            int r = JCudaDriver.cuEventCreate(end, CUevent_flags.CU_EVENT_DEFAULT);
            if (r != 0) {
                JCudaDriver.cuEventDestroy(start);
                Cuda.check(r, "cuEventCreate (kernel profile, " + device + ")");
            }
        }

        void destroyQuietly() {
            JCudaDriver.cuEventDestroy(start);
            JCudaDriver.cuEventDestroy(end);
        }

        void destroy() {
            device.makeCurrent();
            Cuda.check(JCudaDriver.cuEventDestroy(start), "cuEventDestroy (kernel profile, " + device + ")");
            Cuda.check(JCudaDriver.cuEventDestroy(end), "cuEventDestroy (kernel profile, " + device + ")");
        }
    }

    // Guarded by KernelProfile.class.
    private static final List<Slot> slots = new ArrayList<>();
    private static int used;
    private static long skippedInCapture;
    private static long dropped;
    private static final int[] captureStatus = new int[1];

    private KernelProfile() {
    }

    /** True while launches are timed: the one check at each launch site. */
    public static boolean on() {
        return on;
    }

    public static void enable() {
        on = true;
    }

    /** Stops timing new launches; what was recorded stays until {@link #reset()}. */
    public static void disable() {
        on = false;
    }

    /** Forgets what was recorded; the events stay in the pool for the next launches. */
    public static synchronized void reset() {
        for (int i = 0; i < used; i++) {
            slots.get(i).label = null;
        }
        used = 0;
        skippedInCapture = 0;
        dropped = 0;
    }

    /** Launches recorded since the last reset (timed or not yet ended). */
    public static synchronized int recorded() {
        return used;
    }

    /**
     * Grows the event pool to {@code records} launches (at most {@link #MAX_RECORDS}) on the device of the last
     * recorded launch, so that measured runs create no events; does nothing before the first record.
     */
    public static synchronized void reserve(int records) {
        if (used == 0) {
            return;
        }
        CudaDevice device = slots.get(used - 1).device;
        int target = Math.min(records, MAX_RECORDS);
        while (slots.size() < target) {
            slots.add(new Slot(device));
        }
    }

    /**
     * Records the start event of a launch on {@code stream}, whose device must be current. Returns the token for
     * {@link #end}, or {@link #NOT_RECORDED} when off, capturing, or past {@link #MAX_RECORDS}.
     */
    public static int begin(CudaStream stream) {
        if (!on) {
            return NOT_RECORDED;
        }
        synchronized (KernelProfile.class) {
            if (CaptureState.active() || streamCapturing(stream)) {
                skippedInCapture++;
                return NOT_RECORDED;
            }
            if (used >= MAX_RECORDS) {
                dropped++;
                return NOT_RECORDED;
            }
            Slot slot = slotFor(used, stream.device());
            slot.label = null;
            record(slot.start, stream, "start");
            return used++;
        }
    }

    /** Records the end event of the launch {@code token} ({@link #begin}'s result) and names it {@code label}. */
    public static void end(int token, CudaStream stream, String label) {
        if (token == NOT_RECORDED) {
            return;
        }
        synchronized (KernelProfile.class) {
            if (token >= used) {
                return; // reset between begin and end: the launch belongs to no profile
            }
            Slot slot = slots.get(token);
            record(slot.end, stream, label);
            slot.label = label;
        }
    }

    /** The table of the {@code top} largest labels, totals since the last reset. */
    public static String report(int top) {
        return snapshot().format(top, 1);
    }

    /** The same, every time divided by {@code runs} (per-step averages after {@code runs} steps). */
    public static String report(int top, int runs) {
        return snapshot().format(top, runs);
    }

    /**
     * Waits for every device that has records, then resolves each complete event pair into milliseconds and each
     * device's first-to-last span into its wall time. Not inside a capture.
     */
    public static synchronized KernelTimeTable snapshot() {
        CaptureState.refuse("KernelProfile.snapshot (it synchronizes the devices)");
        Set<CudaDevice> devices = new LinkedHashSet<>();
        for (int i = 0; i < used; i++) {
            devices.add(slots.get(i).device);
        }
        for (CudaDevice d : devices) {
            d.synchronize();
        }
        KernelTimeTable table = new KernelTimeTable();
        long unfinished = 0;
        float[] ms = new float[1];
        for (int i = 0; i < used; i++) {
            Slot s = slots.get(i);
            if (s.label == null) {
                unfinished++;
                continue;
            }
            s.device.makeCurrent();
            Cuda.check(JCudaDriver.cuEventElapsedTime(ms, s.start, s.end),
                    "cuEventElapsedTime (kernel profile, launch " + i + " " + s.label + ")");
            table.add(s.label, ms[0]);
        }
        for (CudaDevice d : devices) {
            Slot first = null;
            Slot last = null;
            for (int i = 0; i < used; i++) {
                Slot s = slots.get(i);
                if (s.device == d && s.label != null) {
                    first = first == null ? s : first;
                    last = s;
                }
            }
            if (first != null) {
                d.makeCurrent();
                Cuda.check(JCudaDriver.cuEventElapsedTime(ms, first.start, last.end),
                        "cuEventElapsedTime (kernel profile, wall on " + d + ")");
                table.wall(d.toString(), ms[0]);
            }
        }
        table.notTimed(skippedInCapture, dropped, unfinished);
        return table;
    }

    /**
     * Releases the pooled events (of devices still open). Call it before closing a device the profile has events of,
     * or not at all: the driver frees them with the context.
     */
    public static synchronized void releaseEvents() {
        reset();
        for (Slot s : slots) {
            s.destroy();
        }
        slots.clear();
    }

    /** The pooled slot at {@code index}, created (or replaced, when it belongs to another device) for {@code device}. */
    private static Slot slotFor(int index, CudaDevice device) {
        if (index < slots.size()) {
            Slot s = slots.get(index);
            if (s.device == device) {
                return s;
            }
            s.destroyQuietly(); // its device may be closed already, its events gone with the context
            Slot fresh = new Slot(device);
            slots.set(index, fresh);
            return fresh;
        }
        Slot fresh = new Slot(device);
        slots.add(fresh);
        return fresh;
    }

    private static boolean streamCapturing(CudaStream stream) {
        Cuda.check(JCudaDriver.cuStreamIsCapturing(stream.handle(), captureStatus),
                "cuStreamIsCapturing (kernel profile, " + stream.device() + ")");
        return captureStatus[0] != CUstreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_NONE;
    }

    private static void record(CUevent event, CudaStream stream, String what) {
        stream.device().makeCurrent();
        Cuda.check(JCudaDriver.cuEventRecord(event, stream.handle()),
                "cuEventRecord (kernel profile, " + what + ", " + stream.device() + ")");
    }
}
