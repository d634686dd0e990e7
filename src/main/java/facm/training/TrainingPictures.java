package facm.training;

import facm.model.ModelWeights;
import facm.tensor.GemmPrecision;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The pictures rank 0 of a {@link Trainer} run draws under OUT as it goes: sample grids of the sampling EMA every
 * {@code sample_every} steps ({@link SampleGrid}) and {@code loss.png}, redrawn from {@code metrics.jsonl} with every
 * checkpoint ({@link LossChart}).
 */
final class TrainingPictures {
    private final TrainOptions options;
    private final ModelWeights model;
    private final EmaSet emas;
    private final Path outDir;
    private final PrintStream console;

    TrainingPictures(TrainOptions options, ModelWeights model, EmaSet emas, Path outDir, PrintStream console) {
        this.options = options;
        this.model = model;
        this.emas = emas;
        this.outDir = outDir;
        this.console = console;
    }

    /** Redraws OUT/loss.png from metrics.jsonl; a chart that cannot be drawn is a warning, never a failed run. */
    void writeLossChart() {
        Path metrics = outDir.resolve("metrics.jsonl");
        Path png = outDir.resolve(LossChart.FILE);
        try {
            if (Files.exists(metrics)) {
                LossChart.write(metrics, png, "training loss (" + options.objective() + ")");
            }
        } catch (IOException | RuntimeException e) {
            console.println("warning: could not draw " + png + ": " + e.getMessage());
        }
    }

    /** The sample grid(s) of {@code step} under OUT/samples, reported on the console. */
    void sampleGrid(int step, MetricsLog log) throws IOException {
        Ema ema = emas.forSampling();
        ModelWeights w = ema == null ? model : ema.weights();
        String weights = ema == null ? "raw weights" : "EMA " + ema.name();
        GemmPrecision precision = GemmPrecision.valueOf(options.precision().toUpperCase(Locale.ROOT));
        Path dir = outDir.resolve("samples");
        String stem = String.format(Locale.ROOT, "step-%07d", step);
        long t0 = System.nanoTime();
        if (!SampleGrid.usesConsistencySampler(options.objective())) {
            Path file = dir.resolve(stem + ".png");
            SampleGrid.writeEuler(file, w, precision, options.sampleSteps(), options.seed());
            log.breakLine();
            console.printf(Locale.ROOT, "samples %s (%s, %d Euler steps, %.1f s)%n", file, weights,
                    options.sampleSteps(), (System.nanoTime() - t0) / 1e9);
            return;
        }
        List<String> files = new ArrayList<>();
        for (int nfe : SampleGrid.CONSISTENCY_NFES) {
            Path file = dir.resolve(stem + "-nfe" + nfe + ".png");
            SampleGrid.writeConsistency(file, w, precision, nfe, options.seed());
            files.add(file.toString());
        }
        log.breakLine();
        String nfes = Arrays.stream(SampleGrid.CONSISTENCY_NFES).mapToObj(Integer::toString)
                .collect(Collectors.joining(" and "));
        console.printf(Locale.ROOT, "samples %s (%s, consistency sampler at NFE %s, %.1f s)%n",
                String.join(" and ", files), weights, nfes, (System.nanoTime() - t0) / 1e9);
    }
}
