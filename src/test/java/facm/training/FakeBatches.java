package facm.training;

import facm.data.Batch;
import facm.model.ModelConfig;
import facm.tensor.Philox;

/**
 * Deterministic batches for loop tests: sample i (counted from the start of training) has Philox pixels of (seed, i)
 * and label i mod classes, so a source started at any position continues exactly like the uninterrupted one.
 */
final class FakeBatches implements Trainer.BatchSource {
    private final ModelConfig c;
    private final int batch;
    private final long seed;
    private long position;

    FakeBatches(ModelConfig c, int batch, long seed, long startPosition) {
        this.c = c;
        this.batch = batch;
        this.seed = seed;
        this.position = startPosition;
    }

    @Override
    public Batch next() {
        int per = c.inChannels() * c.inputSize() * c.inputSize();
        float[] images = new float[batch * per];
        int[] labels = new int[batch];
        for (int b = 0; b < batch; b++) {
            long i = position + b;
            labels[b] = (int) (i % c.numClasses());
            for (int k = 0; k < per; k++) {
                images[b * per + k] = Math.max(-1f, Math.min(1f, Philox.normal(seed, i * per + k)));
            }
        }
        position += batch;
        return new Batch(images, new int[] {batch, c.inChannels(), c.inputSize(), c.inputSize()}, labels, position);
    }
}
