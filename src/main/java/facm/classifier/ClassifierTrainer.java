package facm.classifier;

import facm.autograd.Tape;
import facm.data.Batch;
import facm.data.BatchLoader;
import facm.data.Dataset;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Supervised training of a {@link Classifier}: softmax cross-entropy on shuffled batches ({@link BatchLoader}, drop
 * last), optional flip/shift augmentation, global gradient-norm clipping, AdamW with a linear warm-up and then a
 * cosine decay to zero (or a constant rate), and the test accuracy after every epoch. Everything random (initial
 * weights, data order, augmentation) derives from the seed, so a run is reproducible on a given backend.
 */
public final class ClassifierTrainer {

    /**
     * @param epochs      passes over the training data
     * @param batch       images per step
     * @param lr          peak learning rate
     * @param weightDecay AdamW decoupled decay of the matrices
     * @param schedule    "cosine" (warm-up then cosine to 0) or "constant" (warm-up then lr)
     * @param warmupSteps linear warm-up from 0 (capped at a tenth of the run)
     * @param gradClip    clip the global gradient norm to this (0: off)
     * @param augment     "none", "flip", "flip-shift" or "flip-shift:N" (see ImageAugmentation)
     * @param seed        seed of every random choice
     * @param evalBatch   images per inference pass when measuring accuracy
     * @param logEvery    steps per progress line
     */
    public record Options(int epochs, int batch, float lr, float weightDecay, String schedule, int warmupSteps,
                          float gradClip, String augment, long seed, int evalBatch, int logEvery) {
        public Options {
            require(epochs >= 1, "epochs must be >= 1, got " + epochs);
            require(batch >= 1, "batch must be >= 1, got " + batch);
            require(lr > 0 && Float.isFinite(lr), "lr must be > 0, got " + lr);
            require(weightDecay >= 0 && Float.isFinite(weightDecay), "weight decay must be >= 0, got " + weightDecay);
            require(schedule.equals("cosine") || schedule.equals("constant"),
                    "schedule must be cosine or constant, not '" + schedule + "'");
            require(warmupSteps >= 0, "warm-up steps must be >= 0, got " + warmupSteps);
            require(gradClip >= 0 && Float.isFinite(gradClip), "grad clip must be >= 0, got " + gradClip);
            ImageAugmentation.parse(augment, seed);
            require(evalBatch >= 1 && logEvery >= 1, "eval batch and log interval must be >= 1");
        }

        /** The defaults of train-classifier: those the shipped Fashion-MNIST classifier was trained with. */
        public static Options defaults() {
            return new Options(20, 64, 1e-3f, 0.05f, "cosine", 300, 1f, "flip-shift:1", 0, 500, 200);
        }

        private static void require(boolean ok, String message) {
            if (!ok) {
                throw new IllegalArgumentException("train-classifier: " + message);
            }
        }
    }

    /** What one epoch gave: mean training loss and accuracy (on augmented batches), test accuracy, wall time. */
    public record EpochResult(int epoch, double trainLoss, double trainAccuracy, double testAccuracy, double seconds) {
    }

    private final Classifier model;
    private final Options o;
    private final PrintStream out;

    public ClassifierTrainer(Classifier model, Options options, PrintStream out) {
        this.model = model;
        this.o = options;
        this.out = out;
    }

    /** The learning rate of update {@code step} (from 1) out of {@code total}. */
    static float learningRate(Options o, long step, long total) {
        long warmup = Math.min(o.warmupSteps(), total / 10);
        if (step <= warmup) {
            return o.lr() * step / (warmup + 1);
        }
        if (o.schedule().equals("constant")) {
            return o.lr();
        }
        double progress = (double) (step - warmup) / Math.max(1, total - warmup);
        return (float) (o.lr() * 0.5 * (1 + Math.cos(Math.PI * progress)));
    }

    /**
     * Trains on {@code train} for the configured epochs, evaluating on the first {@code testLimit} samples of
     * {@code test} (all when &lt;= 0) after each. Returns one result per epoch.
     */
    public List<EpochResult> train(Dataset train, Dataset test, int testLimit) {
        ClassifierConfig c = model.config();
        if (train.channels() != c.channels() || train.height() != c.imageSize() || train.width() != c.imageSize()
                || train.numClasses() != c.numClasses()) {
            throw new IllegalArgumentException("the classifier takes " + c.channels() + "x" + c.imageSize() + "x"
                    + c.imageSize() + " images of " + c.numClasses() + " classes; " + train.describe()
                    + " does not fit");
        }
        Backend be = model.backend();
        ImageAugmentation augmentation = ImageAugmentation.parse(o.augment(), o.seed());
        List<EpochResult> results = new ArrayList<>();
        try (ClassifierOptimizer opt = new ClassifierOptimizer(model.weights(), o.weightDecay());
             BatchLoader loader = new BatchLoader(train, o.batch(), o.seed(), 0)) {
            long perEpoch = loader.batchesPerEpoch();
            long total = perEpoch * o.epochs();
            for (int epoch = 1; epoch <= o.epochs(); epoch++) {
                long start = System.nanoTime();
                double lossSum = 0;
                long correct = 0, seen = 0;
                for (long i = 1; i <= perEpoch; i++) {
                    long dataEpoch = loader.epoch();
                    Batch batch = loader.next();
                    augmentation.apply(batch.images(), batch.shape(), batch.indices(), dataEpoch);
                    float lr = learningRate(o, opt.step() + 1, total);
                    StepResult s = step(be, opt, batch, lr);
                    lossSum += s.lossSum;
                    correct += s.correct;
                    seen += batch.size();
                    if (i % o.logEvery() == 0 || i == perEpoch) {
                        double secs = (System.nanoTime() - start) / 1e9;
                        out.printf(Locale.ROOT, "epoch %d/%d step %d/%d  loss %.4f  train acc %.2f %%  lr %.2e  "
                                        + "|g| %.3f  %.0f img/s%n", epoch, o.epochs(), i, perEpoch, lossSum / seen,
                                100.0 * correct / seen, lr, s.gradNorm, seen / secs);
                        out.flush();
                    }
                }
                double testAccuracy = model.accuracy(test, testLimit, o.evalBatch());
                double secs = (System.nanoTime() - start) / 1e9;
                EpochResult r = new EpochResult(epoch, lossSum / seen, (double) correct / seen, testAccuracy, secs);
                results.add(r);
                out.printf(Locale.ROOT, "epoch %d/%d done: train loss %.4f, train acc %.2f %%, test acc %.2f %% "
                                + "(%s), %.0f s%n", epoch, o.epochs(), r.trainLoss(), 100 * r.trainAccuracy(),
                        100 * testAccuracy, test.describe(), secs);
                out.flush();
            }
        }
        return results;
    }

    private record StepResult(double lossSum, long correct, double gradNorm) {
    }

    /** Forward with a tape, cross-entropy (batch mean), backward, clip, AdamW. */
    private StepResult step(Backend be, ClassifierOptimizer opt, Batch batch, float lr) {
        int b = batch.size();
        int k = model.numClasses();
        int[] shape = batch.shape();
        double lossSum = 0;
        long correct = 0;
        try (Tensor images = be.upload("images", batch.images(), shape);
             Tensor labels = be.upload("labels", batch.labels(), b);
             Tensor perSample = be.empty("loss", DType.F32, b);
             Tensor gradLogits = be.empty("grad logits", DType.F32, b, k);
             Tape tape = opt.newTape();
             Tensor logits = model.logits(images, tape)) {
            be.training().softmaxCrossEntropy(logits, labels, perSample, gradLogits, 1f / b);
            int[] predicted = Classifier.argmaxRows(be.download(logits), k);
            for (int i = 0; i < b; i++) {
                if (predicted[i] == batch.labels()[i]) {
                    correct++;
                }
            }
            for (float l : be.download(perSample)) {
                lossSum += l;
            }
            tape.backward(logits, gradLogits);
        }
        double norm = opt.gradientNorm();
        if (!Double.isFinite(norm) || !Double.isFinite(lossSum)) {
            throw new IllegalStateException(String.format(Locale.ROOT, "train-classifier: step %d has loss %s and "
                    + "gradient norm %s; lower --lr", opt.step() + 1, lossSum / b, norm));
        }
        float scale = o.gradClip() > 0 && norm > o.gradClip() ? (float) (o.gradClip() / norm) : 1f;
        opt.update(lr, scale);
        return new StepResult(lossSum, correct, norm);
    }
}
