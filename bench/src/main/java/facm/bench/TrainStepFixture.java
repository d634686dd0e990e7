package facm.bench;

import facm.autograd.Gradients;
import facm.data.Batch;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.tensor.Backend;
import facm.tensor.Philox;
import facm.training.AdamW;
import facm.training.DeviceTrainStep;
import facm.training.EmaSet;
import facm.training.GradientNorm;
import facm.training.Objective;

import java.util.Locale;

/**
 * What the training-step benchmarks share: a backend, random Philox student weights, their gradients, the engine's
 * {@link AdamW}, optionally gradient-norm clipping ({@link GradientNorm}, one host read per step, as the trainer
 * does) and EMAs ({@link EmaSet}), a fixed random batch with labels 0, 1, 2, …, and one step done the way
 * facm.training.Trainer does it: zero the gradients, the objective's loss and gradients, clip, AdamW, EMA, synchronize.
 * Closing releases everything, the objective and any teacher included.
 */
final class TrainStepFixture implements AutoCloseable {

    /** Training settings of one benchmark. {@code clipNorm} 0: no clipping; {@code ema} "none" or an EmaSet spec. */
    record Settings(AdamW.Options adamW, float clipNorm, String ema) {
    }

    final Backend backend;
    final ModelConfig config;
    final ModelWeights weights;
    final int batchSize;
    final double cardBf16Tflops;
    private final Settings settings;
    private final Gradients grads;
    private final AdamW adam;
    private final EmaSet emas;
    private final GradientNorm gradNorm;
    private final Batch batch;
    private final java.util.List<AutoCloseable> alsoOwned = new java.util.ArrayList<>();
    private final RegionTimer timer;
    private long step;
    private float lastLoss = Float.NaN;
    private long skipped;
    /** The device step's tables cover this many steps (a JMH trial of an XL/1 step runs a few hundred). */
    private static final int DEVICE_STEP_LIMIT = 100_000;
    private static final int DEVICE_LOG_EVERY = 50;

    /** Opens the backend, measures the card's bf16 rate first (before the model takes memory), then the rest. */
    TrainStepFixture(String benchmark, String backendName, String model, int batchSize, Settings settings) {
        GpuTimes.resetTrial();
        this.backend = TimingPreconditions.open(backendName, benchmark);
        try {
            this.cardBf16Tflops = CardRate.bf16Tflops(backend);
            this.config = Presets.get(model);
            this.batchSize = batchSize;
            this.settings = settings;
            this.weights = ModelWeights.philox(config, backend, 1);
            alsoOwned.add(weights);
            this.grads = new Gradients(weights);
            alsoOwned.add(grads);
            this.adam = new AdamW(weights, settings.adamW(), backend.training());
            alsoOwned.add(adam);
            this.emas = EmaSet.create(settings.ema(), weights);
            alsoOwned.add(emas);
            this.gradNorm = settings.clipNorm() > 0 ? new GradientNorm(backend, backend.training()) : null;
            if (gradNorm != null) {
                alsoOwned.add(gradNorm);
            }
            this.batch = randomBatch(config, batchSize);
            this.timer = new RegionTimer(backend);
            alsoOwned.add(timer);
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    private static Batch randomBatch(ModelConfig c, int b) {
        float[] images = new float[b * c.inChannels() * c.inputSize() * c.inputSize()];
        for (int i = 0; i < images.length; i++) {
            images[i] = Philox.normal(3, i);
        }
        int[] labels = new int[b];
        for (int i = 0; i < b; i++) {
            labels[i] = i % c.numClasses();
        }
        return new Batch(images, new int[] {b, c.inChannels(), c.inputSize(), c.inputSize()}, labels, b);
    }

    /** Something else the fixture closes last-in first-out with itself (an objective, a teacher's weights). */
    <T extends AutoCloseable> T own(T resource) {
        alsoOwned.add(resource);
        return resource;
    }

    /**
     * Ends the setup: describes the work per step ({@code forwardsPerSample} forward-equivalents of
     * {@link ModelFlops#forwardPerImage} per sample) for the profiler, synchronizes and starts the peak-memory window
     * (what is resident now, weights and optimizer state, counts towards the peak as in PyTorch's
     * max_memory_allocated).
     */
    void ready(String line, int forwardsPerSample) {
        GpuTimes.describe(new GpuTimes.Work("samples", batchSize, flopPerStep(forwardsPerSample), 0, cardBf16Tflops));
        backend.synchronize();
        backend.resetPeakMemory();
        System.out.printf(Locale.ROOT, "%n%s: %s on %s, batch %d, %d forward-equivalents of %.1f GFLOP per sample, "
                        + "AdamW %s, clip %s, EMA %s%n", line, config.summary(), backend.describe(), batchSize,
                forwardsPerSample, ModelFlops.forwardPerImage(config) / 1e9, settings.adamW(),
                settings.clipNorm() > 0 ? settings.clipNorm() : "off", settings.ema());
    }

    double flopPerStep(int forwardsPerSample) {
        return (double) forwardsPerSample * batchSize * ModelFlops.forwardPerImage(config);
    }

    /** One timed step; a non-finite loss (or gradient norm) skips the update, as the trainer does. */
    void step(Objective objective, SampleCounter counter, int forwardsPerSample) {
        timer.begin();
        grads.zero();
        step++;
        float loss = objective.lossAndGradients(weights, grads, batch, step);
        double norm = gradNorm == null ? 0 : Float.isFinite(loss) ? gradNorm.compute(grads) : Double.NaN;
        if (Float.isFinite(loss) && Double.isFinite(norm)) {
            adam.update(weights, grads, gradNorm == null ? 1f : GradientNorm.clipFactor(norm, settings.clipNorm()));
            emas.update(weights);
        } else {
            skipped++;
        }
        backend.synchronize();
        timer.end();
        lastLoss = loss;
        GpuTimes.peakMemory(backend.peakMemoryBytes());
        counter.samples += batchSize;
        counter.teraflop += flopPerStep(forwardsPerSample) / 1e12;
    }

    /**
     * The device-step path of {@code train --cuda-graph-step} over this fixture's weights, optimizer, norm and EMAs
     * ({@link DeviceTrainStep}), captured as one CUDA graph when {@code capture} is set; closed with the fixture.
     */
    DeviceTrainStep deviceStep(Objective objective, boolean capture) {
        if (gradNorm == null) {
            throw new IllegalStateException("the device step clips on the device: settings need a clip norm > 0");
        }
        return own(new DeviceTrainStep(objective, weights, grads, adam, emas, gradNorm, settings.clipNorm(),
                DEVICE_STEP_LIMIT, DEVICE_LOG_EVERY, capture));
    }

    /** One timed step of {@code device}: no host read inside the step (the log is read every 50 steps). */
    void step(DeviceTrainStep device, SampleCounter counter, int forwardsPerSample) {
        timer.begin();
        step++;
        device.step(batch, step);
        backend.synchronize();
        timer.end();
        GpuTimes.peakMemory(backend.peakMemoryBytes());
        counter.samples += batchSize;
        counter.teraflop += flopPerStep(forwardsPerSample) / 1e12;
    }

    /** Reads the device step's log at the end of a trial: its last loss and skipped updates for {@link #report}. */
    void finish(DeviceTrainStep device) {
        lastLoss = device.drain();
        skipped = device.skipped();
    }

    /** The closing line: last loss, steps, skipped updates, GPU-time metrics and peak memory. */
    void report(String line) {
        GpuTimes.peakMemory(backend.peakMemoryBytes());
        System.out.printf(Locale.ROOT, "%n%s %s batch %d: last loss %.4f after %d steps (%d skipped); %s%n", line,
                config.name(), batchSize, lastLoss, step, skipped, GpuTimeProfiler.summary());
    }

    @Override
    public void close() {
        RuntimeException first = null;
        for (int i = alsoOwned.size() - 1; i >= 0; i--) {
            try {
                alsoOwned.get(i).close();
            } catch (Exception e) {
                if (first == null) {
                    first = new IllegalStateException("closing " + alsoOwned.get(i).getClass().getSimpleName(), e);
                }
            }
        }
        alsoOwned.clear();
        backend.close();
        if (first != null) {
            throw first;
        }
    }
}
