package facm.training;

import facm.autograd.Gradients;
import facm.data.Batch;
import facm.distributed.Communicator;
import facm.model.ModelWeights;
import facm.tensor.TrainingOps;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;

/**
 * The training loop. Each step: next batch; zero the gradients; the objective's loss and gradients; the global
 * gradient norm (one host read); if loss and norm are finite, AdamW with the clip factor and then every EMA, else the
 * step is skipped and counted, leaving weights, moments and EMAs untouched (facm-spec.md §11.18). Every
 * {@code log_every} steps a metrics line (with the peak device memory of its steps where the backend tracks it),
 * every {@code ckpt_every} steps and at the end a checkpoint, every {@code sample_every} steps sample grids of the
 * sampling EMA (1- or 3-channel image models only; Euler for "fm", the consistency sampler at NFE 1 and 2 for the
 * consistency objectives, see {@link SampleGrid}). With every checkpoint, {@code loss.png} next to {@code metrics.jsonl}
 * is redrawn from it ({@link LossChart}).
 *
 * <p>Data-parallel training (a {@link Communicator} of W ranks): every rank holds a replica of the model, optimizer
 * and EMAs, trains on its slice of each global batch ({@link SampleSlice}), averages the gradients over the ranks and
 * applies the same update; the host scalars are agreed on each step ({@link DataParallel}), so the replicas stay
 * identical. Rank 0 alone logs metrics, writes checkpoints (no world size in them: a run resumes on any number of
 * ranks with the same global batch) and draws sample grids.
 *
 * <p>A run resumed from its last checkpoint repeats the uninterrupted run bit for bit on the CPU: the checkpoint holds
 * every tensor and counter of the state, the objective's randomness is a function of (seed, step, sample), the loader's
 * of (seed, position), and the CPU ops are deterministic.
 */
public final class Trainer implements AutoCloseable {

    /** Where batches come from (the data loader; {@link Batch#positionAfter()} is saved with checkpoints). */
    @FunctionalInterface
    public interface BatchSource {
        Batch next();
    }

    /** How a run ended: steps completed, skipped steps, whether a stop request ended it early, the last checkpoint. */
    public record Result(int step, long skippedSteps, boolean stopped, Path lastCheckpoint) {
    }

    private final TrainOptions options;
    private final ModelWeights model;
    private final Objective objective;
    private final Path outDir;
    private final PrintStream console;
    private final Gradients grads;
    private final AdamW adam;
    /** ZeRO-1 in place of {@link #adam} ({@code --shard-optimizer} in a data-parallel job); else null. */
    private final ShardedAdamW sharded;
    private final EmaSet emas;
    private final GradientNorm gradNorm;
    private final DataParallel parallel;
    private final TrainingPictures pictures;

    private final TrainingOps ops;
    /** {@link #useDeviceStep}: the update's scalars on the device; the objective's inputs and loss too; captured. */
    private boolean deviceStep;
    private boolean deviceLoss;
    private boolean capture;
    private DeviceStepScalars deviceScalars;

    private int step;
    private long dataPosition;
    private long skipped;
    private com.google.gson.JsonObject pendingMetrics = new com.google.gson.JsonObject();
    private int checkpointedStep = -1;
    private volatile boolean stopRequested;

    /**
     * A run at step 0 on {@code model} (its weights are the starting point; EMAs start as copies of them). The trainer
     * owns the gradients, optimizer state and EMAs it makes; the caller keeps the model and the objective.
     */
    public Trainer(TrainOptions options, ModelWeights model, Objective objective, TrainingOps ops, Path outDir,
                   PrintStream console) {
        this(options, model, objective, ops, outDir, console, null);
    }

    /**
     * As above as one rank of a data-parallel job over {@code comm} (null: a single process). The global batch
     * {@code options.batch()} must be a multiple of the world size.
     */
    public Trainer(TrainOptions options, ModelWeights model, Objective objective, TrainingOps ops, Path outDir,
                   PrintStream console, Communicator comm) {
        this(options, model, objective, ops, outDir, console, comm, false);
    }
    /**
     * As above; {@code shardOptimizer} keeps the AdamW moments sharded over the ranks ({@link ShardedAdamW}; ignored
     * in a single process). It is a memory layout, not a training option: checkpoints do not depend on it.
     */
    public Trainer(TrainOptions options, ModelWeights model, Objective objective, TrainingOps ops, Path outDir,
                   PrintStream console, Communicator comm, boolean shardOptimizer) {
        this.parallel = new DataParallel(comm);
        if (options.batch() % parallel.world().worldSize() != 0) {
            throw new IllegalArgumentException("the global batch " + options.batch() + " does not split evenly over "
                    + parallel.world().worldSize() + " ranks (choose a multiple of the number of ranks)");
        }
        this.options = options;
        this.model = model;
        this.objective = objective;
        this.ops = ops;
        this.outDir = outDir;
        this.console = console;
        Gradients g = null;
        AdamW a = null;
        ShardedAdamW z = null;
        EmaSet e = null;
        try {
            g = new Gradients(model);
            if (shardOptimizer && parallel.distributed()) {
                z = new ShardedAdamW(model, options.adamW(), ops, comm);
            } else {
                a = new AdamW(model, options.adamW(), ops);
            }
            e = EmaSet.create(options.ema(), model);
            this.gradNorm = new GradientNorm(model.backend(), ops);
        } catch (RuntimeException ex) {
            closeAll(g, a, z, e);
            throw ex;
        }
        this.grads = g;
        this.adam = a;
        this.sharded = z;
        this.emas = e;
        this.pictures = new TrainingPictures(options, model, e, outDir, console);
    }

    public static Path checkpointDir(Path outDir) {
        return outDir.resolve("checkpoints");
    }

    public static Path lastCheckpoint(Path outDir) {
        return checkpointDir(outDir).resolve("last.safetensors");
    }

    public static Path stepCheckpoint(Path outDir, int step) {
        return checkpointDir(outDir).resolve(String.format(Locale.ROOT, "step-%07d.safetensors", step));
    }

    /** Restores a checkpoint of this run (same model config and EMA list) and continues from its step. */
    public TrainState.Header resume(Path checkpoint) throws IOException {
        TrainState.Header h = TrainState.restore(checkpoint, model, emas, sharded != null ? sharded : adam);
        if (sharded != null) {
            sharded.finishRestore(model);
        }
        TrainState.Counters c = h.counters();
        if (c.seed() != options.seed()) {
            throw new IllegalArgumentException("resume: the checkpoint's seed is " + c.seed() + ", this run's "
                    + options.seed());
        }
        step = c.step();
        dataPosition = c.dataPosition();
        skipped = c.skippedSteps();
        pendingMetrics = c.pendingMetrics();
        checkpointedStep = step;
        return h;
    }

    public int step() {
        return step;
    }

    public long dataPosition() {
        return dataPosition;
    }

    public long skippedSteps() {
        return skipped;
    }

    /** The optimizer state (with --shard-optimizer: this rank's shard of it). */
    public OptimizerMoments optimizer() {
        return sharded != null ? sharded : adam;
    }

    public EmaSet emas() {
        return emas;
    }

    /**
     * {@code train --cuda-graph-step} (issue 7): clip, skip and update counters on the device
     * ({@link DeviceStepScalars}; bit-identical to the default path); with an objective that has device inputs ({@link Objective#useDeviceInputs})
     * its inputs and loss too, and with {@code capture} the step as a CUDA graph ({@link CapturedStep}; objectives
     * without device inputs are refused then). Not data-parallel. Call before {@link #run}.
     */
    public void useDeviceStep(boolean capture) {
        if (parallel.distributed()) {
            throw new IllegalArgumentException("--cuda-graph-step does not support data-parallel runs (--gpus) yet: "
                    + "the ranks agree on the loss and the stop request on the host every step");
        }
        deviceStep = true;
        deviceLoss = objective.useDeviceInputs(true); // objectives without a device path keep their host inputs
        if (capture && !deviceLoss) {
            throw new IllegalArgumentException("--cuda-graph-step: the " + objective.name() + " objective's step is "
                    + "not capturable yet (its per-step inputs and loss are made on the host); facm, scm and meanflow are");
        }
        this.capture = capture;
    }

    /** Asks the loop to stop after the current step and write a checkpoint (thread-safe; the Ctrl-C path). */
    public void requestStop() {
        stopRequested = true;
    }

    /**
     * Trains until {@code options.steps()} or a stop request. With {@code handleCtrlC}, a shutdown hook turns Ctrl-C
     * (SIGINT/SIGTERM) into a stop request and holds the JVM until the checkpoint is written.
     */
    public Result run(BatchSource data, boolean handleCtrlC) throws IOException {
        Files.createDirectories(checkpointDir(outDir));
        try (CtrlCStop ctrlC = new CtrlCStop(handleCtrlC, this::requestStop, () -> step + 1, console)) {
            return loop(data);
        }
    }

    private Result loop(BatchSource data) throws IOException {
        if (deviceStep && deviceScalars == null) {
            // After a resume: the tables cover every step this run can take, the counters start from the restored ones.
            deviceScalars = new DeviceStepScalars(model.backend(), adam, emas, options.steps());
            if (deviceLoss) {
                deviceScalars.enableDeviceLoss(objective, model, grads, gradNorm, ops, options, capture);
            }
        }
        parallel.broadcastWeights(model);
        if (sharded != null) {
            sharded.loadWeights(model);
        }
        if (!parallel.isMaster()) {
            return workerLoop(data);
        }
        boolean grids = options.sampleEvery() > 0 && SampleGrid.supports(model.config());
        if (options.sampleEvery() > 0 && !grids) {
            console.println("sample grids: off (" + model.config().inChannels() + "-channel latents need the VAE "
                    + "decoder; sample them with the sample command and decode outside)");
        }
        Path last = checkpointedStep >= 0 ? lastCheckpoint(outDir) : null;
        try (MetricsLog log = new MetricsLog(outDir.resolve("metrics.jsonl"), step, options.steps(), options.batch(),
                options.lr(), console)) {
            log.restorePending(pendingMetrics);
            boolean stop = false;
            while (step < options.steps() && !stop) {
                stop = trainStep(data.next(), log);
                boolean ckpt = options.ckptEvery() > 0 && step % options.ckptEvery() == 0;
                boolean logStep = step % options.logEvery() == 0 || step == options.steps();
                if (deviceScalars != null && (ckpt || stop || logStep)) {
                    deviceScalars.drainLog(log, step, (n, loss, norm) -> reportSkip(n, loss, norm, log));
                }
                if (logStep) {
                    log.flush(step, skipped);
                }
                if (ckpt) {
                    last = checkpoint(log);
                }
                if (grids && step % options.sampleEvery() == 0) {
                    pictures.sampleGrid(step, log);
                }
            }
            if (checkpointedStep != step) {
                last = checkpoint(log);
            }
        }
        DeviceStepScalars.pullCounters(deviceScalars);
        parallel.barrier(); // the other ranks exit only once the last checkpoint is on disk
        return new Result(step, skipped, step < options.steps(), last);
    }

    /** Ranks other than 0: the same steps and decisions, no log, checkpoints or grids (they wait at the end). */
    private Result workerLoop(BatchSource data) {
        boolean stop = false;
        while (step < options.steps() && !stop) {
            stop = trainStep(data.next(), null);
            if (sharded != null && options.ckptEvery() > 0 && step % options.ckptEvery() == 0) {
                sharded.gathered().close(); // rank 0 gathers the moments at the same moments and writes them
                checkpointedStep = step;
            }
        }
        if (sharded != null && checkpointedStep != step) {
            sharded.gathered().close();
        }
        DeviceStepScalars.pullCounters(deviceScalars);
        parallel.barrier();
        return new Result(step, skipped, step < options.steps(), null);
    }

    /** One step; returns the agreed stop decision. {@code log} is null on ranks other than 0. */
    private boolean trainStep(Batch batch, MetricsLog log) {
        // The peak window is this step alone (grids and checkpoints between steps are not training memory).
        model.backend().resetPeakMemory();
        parallel.stepBegins();
        if (deviceScalars != null && deviceScalars.deviceLoss()) { // nothing read back: see DeviceStepLog
            deviceScalars.deviceLossStep(objective, model, batch, step);
            dataPosition = batch.positionAfter();
            log.recordPeakMemory(model.backend().peakMemoryBytes());
            step++;
            return stopRequested;
        }
        grads.zero();
        long stepIndex = step;
        float localLoss;
        if (sharded == null) {
            localLoss = parallel.lossAndAveragedGradients(() -> objective.lossAndGradients(model, grads, batch,
                    stepIndex, parallel.slice(options.batch())), grads, model.backend());
        } else {
            localLoss = objective.lossAndGradients(model, grads, batch, stepIndex, parallel.slice(options.batch()));
            parallel.reduceScatterGradients(sharded, grads, model.backend());
        }
        DataParallel.Agreement agreed = parallel.agree(localLoss, stopRequested, objective.lastMetrics());
        float loss = agreed.loss();
        double norm;
        if (deviceScalars != null) {
            norm = deviceScalars.update(loss, model, grads, gradNorm, ops, options.gradClip());
        } else {
            norm = !Float.isFinite(loss) ? Double.NaN
                    : sharded != null ? sharded.globalGradientNorm() : gradNorm.compute(grads);
            if (Float.isFinite(loss) && Double.isFinite(norm)) {
                float clip = GradientNorm.clipFactor(norm, options.gradClip());
                if (sharded != null) {
                    sharded.update(model, clip);
                } else {
                    adam.update(model, grads, clip);
                }
                emas.update(model);
            }
        }
        return finishStep(batch, log, agreed, norm, Float.isFinite(loss) && Double.isFinite(norm));
    }

    /** The tail both update paths share: metrics or the skip count and message, data position, log, step + 1. */
    private boolean finishStep(Batch batch, MetricsLog log, DataParallel.Agreement agreed, double norm,
                               boolean finite) {
        float loss = agreed.loss();
        Map<String, Double> metrics = Map.of();
        if (finite) {
            metrics = parallel.withStepMetrics(agreed.metrics(), model.backend().peakMemoryBytes());
        } else {
            reportSkip(step + 1, loss, norm, log);
        }
        parallel.stepEnds();
        dataPosition = batch.positionAfter();
        if (log != null) {
            log.record(loss, norm, finite, metrics);
            log.recordPeakMemory(model.backend().peakMemoryBytes());
        }
        step++;
        return agreed.stop();
    }

    private void reportSkip(int stepNumber, float loss, double norm, MetricsLog log) {
        skipped++;
        if (log != null) {
            log.breakLine();
            console.printf(Locale.ROOT, "step %d skipped: loss %s, grad norm %s (%d skipped so far); weights, "
                    + "optimizer and EMAs unchanged%n", stepNumber, loss, norm, skipped);
        }
    }


    private Path checkpoint(MetricsLog log) throws IOException {
        long t0 = System.nanoTime();
        DeviceStepScalars.pullCounters(deviceScalars);
        Path file = stepCheckpoint(outDir, step);
        try (ShardedAdamW.Gathered gathered = sharded != null ? sharded.gathered() : null) {
            OptimizerMoments moments = gathered != null ? gathered : adam;
            TrainState.write(file, model, emas, moments, options, new TrainState.Counters(step, dataPosition,
                    skipped, moments.step(), options.seed(), log.pendingState()));
        }
        Path last = lastCheckpoint(outDir);
        TrainState.linkOrCopy(file, last);
        checkpointedStep = step;
        log.breakLine();
        console.printf(Locale.ROOT, "checkpoint %s (%.1f MB, %.1f s)%n", file, Files.size(file) / 1e6,
                (System.nanoTime() - t0) / 1e9);
        pictures.writeLossChart();
        return last;
    }

    private static void closeAll(AutoCloseable... all) {
        for (AutoCloseable c : all) {
            if (c != null) {
                try {
                    c.close();
                } catch (Exception ignored) {
                    // already failing; the first error is the one to report
                }
            }
        }
    }

    @Override
    public void close() {
        closeAll(deviceScalars, gradNorm, emas, adam, sharded, grads);
    }
}
