package facm.cli;

import facm.backend.Backends;
import facm.classifier.Classifier;
import facm.classifier.ClassifierConfig;
import facm.classifier.ClassifierTrainer;
import facm.classifier.DatasetPrefix;
import facm.data.Dataset;
import facm.data.Datasets;
import facm.data.IdxDataset;
import facm.tensor.Backend;
import facm.tensor.GemmPrecision;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * {@code train-classifier}: trains the feature/classifier network of {@code eval} (facm.classifier) on a labelled
 * image data set and writes it with its test accuracy, data, epochs and the command line in the file's metadata.
 */
@Command(name = "train-classifier", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Train the image classifier whose features and predictions eval uses (FID, class consistency). "
                + "Prints the test accuracy after every epoch and writes OUT (.safetensors) with the accuracy, data, "
                + "epochs and this command in its metadata. The shipped Fashion-MNIST classifier was made with "
                + "tools/train-classifier.sh.")
final class TrainClassifierCommand implements Runnable {
    @Spec
    CommandSpec spec;

    @Option(names = "--data", required = true, description = "training data: a folder of IDX files (its train split, "
            + "e.g. /usr/share/datasets/fashion-mnist), of class folders of images, or fashion-mnist (the bundled "
            + "10k test split: only for trying things out)")
    String data;
    @Option(names = "--test-data", defaultValue = Datasets.BUNDLED, description = "data to measure accuracy on: "
            + "fashion-mnist (bundled test split; default) or a folder (its test split when it holds IDX files)")
    String testData;
    @Option(names = "--out", required = true, description = "classifier file to write (.safetensors)")
    Path out;
    @Option(names = "--epochs", description = "passes over the training data (default 20)")
    Integer epochs;
    @Option(names = "--batch", description = "images per step (default 64)")
    Integer batch;
    @Option(names = "--lr", description = "peak AdamW learning rate (default 1e-3)")
    Float lr;
    @Option(names = "--weight-decay", description = "AdamW decay of the weight matrices (default 0.05)")
    Float weightDecay;
    @Option(names = "--schedule", description = "cosine (warm-up, then cosine to 0; default) or constant")
    String schedule;
    @Option(names = "--warmup", description = "linear warm-up steps, at most a tenth of the run (default 300)")
    Integer warmup;
    @Option(names = "--grad-clip", description = "clip the global gradient norm (0 = off; default 1)")
    Float gradClip;
    @Option(names = "--augment", description = "none | flip | flip-shift | flip-shift:N (random horizontal flips, "
            + "and shifts of up to N pixels, 2 if not given; default flip-shift:1)")
    String augment;
    @Option(names = "--device", defaultValue = "auto", description = "cpu | cuda | cuda:N | auto (default)")
    String device;
    @Option(names = "--precision", defaultValue = "fp32", description = "fp32 (default) | tf32 | bf16 GEMMs")
    String precision;
    @Option(names = "--seed", description = "seed of the weights, data order and augmentation (default 0)")
    Long seed;
    @Option(names = "--limit", defaultValue = "0", description = "train on the first N samples only (0 = all)")
    int limit;
    @Option(names = "--test-limit", defaultValue = "0", description = "measure accuracy on the first N test samples "
            + "only (0 = all)")
    int testLimit;
    @Option(names = "--patch", description = "architecture: patch side (default 8: 16 tokens of 32×32 images)")
    Integer patch;
    @Option(names = "--width", description = "architecture: token width = feature dimension (default 128)")
    Integer width;
    @Option(names = "--depth", description = "architecture: transformer blocks (default 2)")
    Integer depth;
    @Option(names = "--heads", description = "architecture: attention heads (default 4)")
    Integer heads;
    @Option(names = "--mlp", description = "architecture: SwiGLU hidden width (default 256)")
    Integer mlp;

    @Override
    public void run() {
        try {
            train();
        } catch (java.nio.file.NoSuchFileException e) {
            throw new IllegalArgumentException("file not found: " + e.getFile(), e);
        } catch (IOException e) {
            throw new IllegalStateException(e.getMessage() == null ? e.toString() : e.getMessage(), e);
        }
    }

    private void train() throws IOException {
        ClassifierTrainer.Options options = options();
        GemmPrecision gemm = GemmPrecision.valueOf(precision.trim().toUpperCase(Locale.ROOT));
        Path parent = out.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        try (Dataset trainSet = Datasets.open(data); Dataset testSet = openTestData(testData)) {
            Dataset train = new DatasetPrefix(trainSet, limit);
            Dataset test = new DatasetPrefix(testSet, testLimit);
            requireFits(train, test);
            ClassifierConfig config = architecture().withData(train.channels(), train.height(), train.numClasses());
            Backends.Selection sel = Backends.select(device);
            System.out.println("device:  " + sel.why());
            System.out.println("model:   " + config.summary());
            System.out.println("data:    " + train.describe());
            System.out.println("test:    " + test.describe());
            System.out.println("options: " + options);
            if (data.equals(testData) && !hasIdxTestSplit(testData)) {
                System.out.println("warning: the test data is the training data, so its accuracy says little about "
                        + "unseen images");
            }
            try (Backend be = sel.backend();
                 Classifier model = Classifier.initialize(config, be, options.seed()).precision(gemm)) {
                long start = System.nanoTime();
                List<ClassifierTrainer.EpochResult> results = new ClassifierTrainer(model, options, System.out)
                        .train(train, test, 0);
                double seconds = (System.nanoTime() - start) / 1e9;
                ClassifierTrainer.EpochResult last = results.get(results.size() - 1);
                Map<String, String> meta = new LinkedHashMap<>();
                meta.put("test_accuracy", Double.toString(last.testAccuracy()));
                meta.put("test_data", test.describe());
                meta.put("epoch_test_accuracy", results.stream()
                        .map(r -> String.format(Locale.ROOT, "%.4f", r.testAccuracy()))
                        .collect(Collectors.joining(",", "[", "]")));
                meta.put("data", train.describe());
                meta.put("epochs", Integer.toString(options.epochs()));
                meta.put("options", options.toString());
                // The arguments as given, from the subcommand's name on (picocli keeps them all).
                meta.put("command", String.join(" ", spec.commandLine().getParseResult().originalArgs()));
                meta.put("device", be.describe());
                meta.put("train_seconds", String.format(Locale.ROOT, "%.0f", seconds));
                model.save(out, meta);
                System.out.printf(Locale.ROOT, "wrote %s: test accuracy %.2f %% after %d epochs (%.0f s)%n", out,
                        100 * last.testAccuracy(), options.epochs(), seconds);
            }
        }
    }

    /** The test split of an IDX folder that holds one (the same folder as --data is then fine), else the data set. */
    private static Dataset openTestData(String spec) {
        return hasIdxTestSplit(spec) ? Datasets.open(spec, "test") : Datasets.open(spec);
    }

    /** A folder (not the bundled set) with the IDX test images t10k-images-idx3-ubyte[.gz]. */
    private static boolean hasIdxTestSplit(String spec) {
        if (spec.equals(Datasets.BUNDLED)) {
            return false;
        }
        Path folder = Path.of(spec);
        String images = IdxDataset.Split.TEST.imagesName();
        return Files.isRegularFile(folder.resolve(images)) || Files.isRegularFile(folder.resolve(images + ".gz"));
    }

    /** The flags given, the defaults (ClassifierTrainer.Options.defaults()) for the rest. */
    private ClassifierTrainer.Options options() {
        ClassifierTrainer.Options d = ClassifierTrainer.Options.defaults();
        return new ClassifierTrainer.Options(or(epochs, d.epochs()), or(batch, d.batch()), or(lr, d.lr()),
                or(weightDecay, d.weightDecay()),
                schedule == null ? d.schedule() : schedule.trim().toLowerCase(Locale.ROOT), or(warmup, d.warmupSteps()),
                or(gradClip, d.gradClip()), augment == null ? d.augment() : augment, or(seed, d.seed()), d.evalBatch(),
                d.logEvery());
    }

    private static <T> T or(T given, T fallback) {
        return given == null ? fallback : given;
    }

    private ClassifierConfig architecture() {
        ClassifierConfig d = ClassifierConfig.fashionMnist();
        return new ClassifierConfig(d.channels(), d.imageSize(), patch == null ? d.patch() : patch,
                width == null ? d.width() : width, depth == null ? d.depth() : depth,
                heads == null ? d.heads() : heads, mlp == null ? d.mlpHidden() : mlp, d.numClasses());
    }

    private static void requireFits(Dataset train, Dataset test) {
        if (train.height() != train.width()) {
            throw new IllegalArgumentException("the classifier takes square images; " + train.describe() + " is "
                    + train.height() + "x" + train.width());
        }
        if (test.channels() != train.channels() || test.height() != train.height() || test.width() != train.width()
                || test.numClasses() != train.numClasses()) {
            throw new IllegalArgumentException("test data " + test.describe() + " does not match the training data "
                    + train.describe() + " (image shape or classes)");
        }
    }
}
