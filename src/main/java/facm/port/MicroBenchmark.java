package facm.port;

import facm.cuda.Cuda;
import facm.cuda.CudaDevice;
import facm.cuda.CudaEvent;
import facm.cuda.CudaStream;

import java.util.Arrays;

/**
 * GPU time of one queued call, as the median over {@code reps} timed calls after {@code warmup} untimed ones, each
 * bracketed by CUDA events on the device's main stream (the stream every backend op is queued on). Per-launch sync
 * checking is switched off while timing (it would add a synchronize to every launch) and restored after.
 */
public final class MicroBenchmark {
    private final CudaDevice device;
    private final int warmup;
    private final int reps;

    public MicroBenchmark(CudaDevice device, int warmup, int reps) {
        if (warmup < 0 || reps < 1) {
            throw new IllegalArgumentException("micro-benchmark needs warmup >= 0 and reps >= 1, got " + warmup + ", " + reps);
        }
        this.device = device;
        this.warmup = warmup;
        this.reps = reps;
    }

    public int reps() {
        return reps;
    }

    /** Median milliseconds of one call of {@code call}. */
    public double medianMillis(Runnable call) {
        boolean syncCheck = Cuda.syncCheck();
        Cuda.setSyncCheck(false);
        CudaStream stream = device.stream();
        double[] ms = new double[reps];
        try (CudaEvent start = CudaEvent.create(device); CudaEvent end = CudaEvent.create(device)) {
            for (int i = 0; i < warmup; i++) {
                call.run();
            }
            stream.synchronize();
            for (int i = 0; i < reps; i++) {
                start.record(stream);
                call.run();
                end.record(stream);
                ms[i] = end.elapsedMillisSince(start);
            }
        } finally {
            Cuda.setSyncCheck(syncCheck);
        }
        Arrays.sort(ms);
        return reps % 2 == 1 ? ms[reps / 2] : (ms[reps / 2 - 1] + ms[reps / 2]) / 2;
    }
}
