package facm.training;

import facm.tensor.Backend;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The metrics of the device-loss steps ({@code train --cuda-graph-step} with a consistency objective), kept on the
 * device and read only at log and checkpoint steps: rows of (loss, gradient norm, skip flag, objective terms) that
 * {@link TrainingOps#stepLoss} and {@link TrainingOps#stepLogEnd} write, replayed into the {@link MetricsLog} in step
 * order, so the metrics lines, skipped count and checkpointed interval sums equal the host path's bit for bit (the
 * rows hold the very values the host path computes; the skip messages come at the drain instead of at the step).
 */
final class DeviceStepLog implements AutoCloseable {
    /** Told of each skipped step at the drain: its 1-based step number, loss and norm. */
    @FunctionalInterface
    interface SkipReport {
        void skipped(int stepNumber, float loss, double norm);
    }

    private final Backend backend;
    private final int capacity;
    private final List<String> terms;
    private final Tensor rows;
    private final Tensor count;
    /** Rows the host has queued since the last drain (the device count must agree). */
    private int pending;

    DeviceStepLog(Backend backend, int capacity, List<String> terms) {
        if (capacity < 1 || terms.size() > TrainingOps.STEP_LOG_TERMS) {
            throw new IllegalArgumentException("device step log: capacity " + capacity + " (>= 1) and terms " + terms
                    + " (at most " + TrainingOps.STEP_LOG_TERMS + ")");
        }
        this.backend = backend;
        this.capacity = capacity;
        this.terms = List.copyOf(terms);
        this.rows = backend.upload("step log", new int[Math.multiplyExact(capacity, 2 * TrainingOps.STEP_LOG_VALUES)],
                capacity * 2 * TrainingOps.STEP_LOG_VALUES);
        Tensor c = null;
        try {
            c = backend.upload("step log count", new int[1], 1);
        } catch (RuntimeException e) {
            rows.close();
            throw e;
        }
        this.count = c;
    }

    Tensor rows() {
        return rows;
    }

    Tensor count() {
        return count;
    }

    /** Notes that a step wrote its row; drain before the log is full. */
    void rowQueued() {
        if (pending == capacity) {
            throw new IllegalStateException("device step log: " + (pending + 1) + " steps since the last read, "
                    + "capacity " + capacity + " (the trainer reads it at every log step)");
        }
        pending++;
    }

    /**
     * Replays the pending rows into {@code log} (null on no rank but 0; the steps ending with {@code stepsCompleted})
     * and empties the log, telling {@code report} of each skipped step first. One synchronizing read.
     */
    void drain(MetricsLog log, int stepsCompleted, SkipReport report) {
        if (pending == 0) {
            return;
        }
        int rowsOnDevice = backend.downloadInts(count)[0];
        if (rowsOnDevice != pending) {
            throw new IllegalStateException("device step log: the device counted " + rowsOnDevice + " steps, the host "
                    + pending);
        }
        int[] words = backend.downloadInts(rows);
        for (int i = 0; i < pending; i++) {
            int base = i * TrainingOps.STEP_LOG_VALUES;
            float loss = (float) TrainingOps.fp64At(words, base + TrainingOps.LOG_LOSS);
            double norm = TrainingOps.fp64At(words, base + TrainingOps.LOG_NORM);
            boolean applied = TrainingOps.fp64At(words, base + TrainingOps.LOG_SKIP) == 0;
            Map<String, Double> metrics = new LinkedHashMap<>();
            for (int k = 0; k < terms.size(); k++) {
                metrics.put(terms.get(k), TrainingOps.fp64At(words, base + TrainingOps.LOG_TERMS + k));
            }
            if (!applied) {
                report.skipped(stepsCompleted - pending + i + 1, loss, norm);
            }
            if (log != null) {
                log.record(loss, norm, applied, applied ? metrics : Map.of());
            }
        }
        backend.training().copyIn(new int[1], count);
        pending = 0;
    }

    @Override
    public void close() {
        rows.close();
        count.close();
    }
}
