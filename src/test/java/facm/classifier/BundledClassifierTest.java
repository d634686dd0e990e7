package facm.classifier;

import facm.backend.cpu.CpuBackend;
import facm.data.Dataset;
import facm.data.Datasets;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Fashion-MNIST classifier shipped in the jar: it loads, records how it was made, and classifies the first 200
 * images of the bundled test split (which it never trained on) with at least 85 % accuracy; its features are finite
 * and the same whether images come one at a time or in a batch.
 */
class BundledClassifierTest {

    @Test
    void loadsAndClassifiesBundledTestImages() {
        try (CpuBackend cpu = new CpuBackend(2);
             Classifier c = Classifier.bundledFashionMnist(cpu);
             Dataset data = Datasets.open(Datasets.BUNDLED)) {
            assertEquals(10, c.numClasses());
            assertEquals(c.config().width(), c.featureDim());
            assertEquals(new ClassifierConfig(1, 32, c.config().patch(), c.featureDim(), c.config().depth(),
                    c.config().heads(), c.config().mlpHidden(), 10), c.config());
            double recorded = Double.parseDouble(c.metadata().get("test_accuracy"));
            assertTrue(recorded >= 0.9, "the shipped classifier records test accuracy " + recorded);
            assertTrue(c.metadata().get("command").startsWith("train-classifier "), c.metadata().get("command"));
            assertTrue(c.describe().startsWith("bundled fashion-mnist-classifier.safetensors"), c.describe());

            double accuracy = c.accuracy(data, 200, 100);
            System.out.printf("[BundledClassifierTest] %s%n  accuracy on the first 200 bundled test images: %.3f%n",
                    c.describe(), accuracy);
            assertTrue(accuracy >= 0.85, "accuracy " + accuracy + " on 200 bundled test images");

            int len = data.sampleLength();
            float[] images = new float[3 * len];
            for (int i = 0; i < 3; i++) {
                data.read(i, images, i * len);
            }
            float[] second = java.util.Arrays.copyOfRange(images, len, 2 * len);
            try (Tensor batch = cpu.upload("x", images, 3, 1, 32, 32);
                 Tensor one = cpu.upload("x1", second, 1, 1, 32, 32);
                 Tensor f = c.features(batch); Tensor f1 = c.features(one)) {
                assertArrayEquals(new int[] {3, c.featureDim()}, f.shape());
                float[] all = cpu.download(f);
                for (float v : all) {
                    assertTrue(Float.isFinite(v), "feature " + v);
                }
                float[] mid = java.util.Arrays.copyOfRange(all, c.featureDim(), 2 * c.featureDim());
                float[] alone = cpu.download(f1);
                for (int i = 0; i < mid.length; i++) {
                    assertEquals(mid[i], alone[i], 1e-5f * (1 + Math.abs(mid[i])), "feature " + i);
                }
            }
        }
    }
}
