package facm.backend.cuda;

import facm.cuda.CudaDevice;
import facm.cuda.CudaTestSupport;
import facm.model.ParameterTable;
import facm.model.Presets;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Times the optimizer phases of one XL/1 training step (404 trainable tensors, 675 M parameters) per tensor and as one
 * foreach launch, and prints both (no timing assertion: a report for issue 7). Needs about 17 GB of GPU memory.
 */
@Tag("gpu")
class CudaForeachTimingTest {
    private static final int REPEATS = 5;

    private static double millis(CudaDevice device, Runnable phase) {
        return GpuTiming.millis(device, REPEATS, phase);
    }

    @Test
    void reportPerTensorVersusForeachAtXl1() {
        CudaDevice device = CudaTestSupport.deviceWithKernels();
        List<Tensor> made = new ArrayList<>();
        try (CudaBackend gpu = CudaBackend.on(device)) {
            try {
                timeAll(device, gpu, made);
            } finally {
                made.forEach(Tensor::close);
                ((CudaTrainingOps) gpu.training()).close();
            }
        }
    }

    private static List<Tensor> set(CudaBackend gpu, List<int[]> shapes, float value, List<Tensor> made) {
        List<Tensor> out = new ArrayList<>();
        for (int[] s : shapes) {
            Tensor t = gpu.empty("t", DType.F32, s);
            made.add(t);
            gpu.fill(t, value);
            out.add(t);
        }
        return out;
    }

    private static void timeAll(CudaDevice device, CudaBackend gpu, List<Tensor> made) {
        List<int[]> shapes = new ArrayList<>();
        long params = 0;
        for (ParameterTable.Entry e : ParameterTable.of(Presets.get("XL/1")).entries()) {
            if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                shapes.add(e.shape());
                params += facm.tensor.Shapes.numel(e.shape());
            }
        }
        TrainingOps ops = gpu.training();
        List<Tensor> p = set(gpu, shapes, 0.5f, made), g = set(gpu, shapes, 0.01f, made);
        List<Tensor> m = set(gpu, shapes, 0f, made), v = set(gpu, shapes, 0f, made);
        List<Tensor> avg = set(gpu, shapes, 0.5f, made);
        Tensor acc = gpu.zeros(DType.F32, 1);
        made.add(acc);
        int n = shapes.size();
        report("adamw", n, params,
                millis(device, () -> {
                    for (int i = 0; i < n; i++) {
                        ops.adamw(p.get(i), g.get(i), m.get(i), v.get(i), 1e-4f, 0.9f, 0.999f, 1e-8f, 0f, 3, 0.5f);
                    }
                }),
                millis(device, () -> ops.adamwForeach(p, g, m, v, 1e-4f, 0.9f, 0.999f, 1e-8f, 0f, 3, 0.5f)));
        report("ema (one copy)", n, params,
                millis(device, () -> {
                    for (int i = 0; i < n; i++) {
                        gpu.axpby(0.9999f, avg.get(i), 1e-4f, p.get(i), avg.get(i));
                    }
                }),
                millis(device, () -> ops.emaUpdateForeach(avg, p, 0.9999)));
        report("sum of squares", n, params,
                millis(device, () -> g.forEach(x -> ops.sumOfSquares(x, acc))),
                millis(device, () -> ops.sumOfSquaresForeach(g, acc)));
        report("zero", n, params,
                millis(device, () -> m.forEach(x -> gpu.fill(x, 0f))),
                millis(device, () -> ops.zeroForeach(m)));
        assertEquals(0f, gpu.download(m.get(n - 1))[0]);
    }

    private static void report(String phase, int tensors, long params, double perTensor, double foreach) {
        System.out.println(String.format(Locale.ROOT, "[foreach] XL/1 %-15s %d tensors, %d params: per tensor %.3f ms,"
                + " foreach %.3f ms (%.2fx)", phase, tensors, params, perTensor, foreach, perTensor / foreach));
    }
}
