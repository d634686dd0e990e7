package facm.classifier;

import facm.autograd.Tape;
import facm.backend.cpu.CpuBackend;
import facm.backend.cuda.CudaBackend;
import facm.cuda.CudaTestSupport;
import facm.data.Dataset;
import facm.data.Datasets;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The classifier on CUDA against the CPU reference: the shipped classifier's logits, features and accuracy on bundled
 * test images, and one training step's loss and parameter gradients. fp32 GEMMs on both sides, only summation orders
 * differ: relative L2 error 1e-4 per tensor, and the predicted classes must agree except where the CPU's top two
 * logits are closer than 1e-3.
 */
@Tag("gpu")
class ClassifierGpuTest {
    private static final double REL_L2 = 1e-4;

    @Test
    void bundledClassifierMatchesCpu() {
        try (CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
             CpuBackend cpu = new CpuBackend();
             Classifier onGpu = Classifier.bundledFashionMnist(gpu);
             Classifier onCpu = Classifier.bundledFashionMnist(cpu);
             Dataset data = Datasets.open(Datasets.BUNDLED)) {
            int n = 64;
            float[] images = new float[n * data.sampleLength()];
            for (int i = 0; i < n; i++) {
                data.read(i, images, i * data.sampleLength());
            }
            float[][] cpuOut = run(cpu, onCpu, images, n);
            float[][] gpuOut = run(gpu, onGpu, images, n);
            assertClose("logits", cpuOut[0], gpuOut[0]);
            assertClose("features", cpuOut[1], gpuOut[1]);
            int k = onCpu.numClasses();
            int[] cpuClass = Classifier.argmaxRows(cpuOut[0], k);
            int[] gpuClass = Classifier.argmaxRows(gpuOut[0], k);
            for (int i = 0; i < n; i++) {
                if (cpuClass[i] != gpuClass[i]) {
                    float gap = Math.abs(cpuOut[0][i * k + cpuClass[i]] - cpuOut[0][i * k + gpuClass[i]]);
                    assertTrue(gap < 1e-3, "image " + i + ": cpu class " + cpuClass[i] + ", gpu " + gpuClass[i]);
                }
            }
            double gpuAccuracy = onGpu.accuracy(data, 1000, 250);
            double cpuAccuracy = onCpu.accuracy(data, 1000, 250);
            System.out.printf("[ClassifierGpuTest] accuracy on 1000 bundled images: gpu %.4f, cpu %.4f%n",
                    gpuAccuracy, cpuAccuracy);
            assertEquals(cpuAccuracy, gpuAccuracy, 0.002);
        }
    }

    /** {logits, features} of n images. */
    private static float[][] run(Backend be, Classifier c, float[] images, int n) {
        try (Tensor x = be.upload("x", images, n, 1, 32, 32); Tensor z = c.logits(x); Tensor f = c.features(x)) {
            assertEquals(c.featureDim(), f.dim(1));
            return new float[][] {be.download(z), be.download(f)};
        }
    }

    @Test
    void trainingStepGradientsMatchCpu() {
        ClassifierConfig config = new ClassifierConfig(1, 32, 4, 32, 2, 2, 48, 10);
        try (CudaBackend gpu = CudaBackend.on(CudaTestSupport.deviceWithKernels());
             CpuBackend cpu = new CpuBackend();
             Dataset data = Datasets.open(Datasets.BUNDLED)) {
            int n = 37;
            float[] images = new float[n * data.sampleLength()];
            int[] labels = new int[n];
            for (int i = 0; i < n; i++) {
                data.read(100 + i, images, i * data.sampleLength());
                labels[i] = data.label(100 + i);
            }
            Map<String, float[]> cpuGrads = gradients(cpu, config, images, labels);
            Map<String, float[]> gpuGrads = gradients(gpu, config, images, labels);
            for (String key : cpuGrads.keySet()) {
                assertClose(key, cpuGrads.get(key), gpuGrads.get(key));
            }
        }
    }

    /** Per-sample losses (under key "loss") and every parameter gradient of one cross-entropy step. */
    private static Map<String, float[]> gradients(Backend be, ClassifierConfig config, float[] images, int[] labels) {
        int n = labels.length;
        Map<String, float[]> out = new LinkedHashMap<>();
        try (Classifier model = Classifier.initialize(config, be, 4)) {
            ClassifierGradientTest.randomize(model.weights());
            try (ClassifierOptimizer opt = new ClassifierOptimizer(model.weights(), 0f);
                 Tensor x = be.upload("x", images, n, 1, 32, 32);
                 Tensor y = be.upload("y", labels, n);
                 Tensor loss = be.empty(DType.F32, n);
                 Tensor grad = be.empty(DType.F32, n, config.numClasses());
                 Tape tape = opt.newTape();
                 Tensor z = model.logits(x, tape)) {
                be.training().softmaxCrossEntropy(z, y, loss, grad, 1f / n);
                tape.backward(z, grad);
                out.put("loss", be.download(loss));
                for (String key : model.weights().asMap().keySet()) {
                    out.put(key, be.download(opt.gradient(key)));
                }
            }
        }
        return out;
    }

    private static void assertClose(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + ": length");
        double num = 0, den = 0;
        for (int i = 0; i < expected.length; i++) {
            assertTrue(Float.isFinite(actual[i]), what + ": non-finite GPU value at " + i);
            double d = actual[i] - expected[i];
            num += d * d;
            den += (double) expected[i] * expected[i];
        }
        double rel = Math.sqrt(num / Math.max(den, 1e-30));
        System.out.printf("[ClassifierGpuTest] %-28s rel L2 %.2e%n", what, rel);
        assertTrue(rel < REL_L2, what + ": relative L2 error " + rel + " vs the CPU");
    }
}
