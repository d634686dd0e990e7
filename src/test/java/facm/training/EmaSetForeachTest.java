package facm.training;

import facm.backend.cpu.CpuBackend;
import facm.model.ModelWeights;
import facm.model.ParameterTable;
import facm.tensor.Backend;
import facm.tensor.DType;
import facm.tensor.Tensor;
import facm.tensor.TrainingOps;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * EmaSet's updates go through the foreach ops (TrainingOps.emaUpdateForeach); they must equal each copy's per-tensor
 * {@link Ema#update}, and the device form (EmaSet's own counters and decay tables) the host form, bit for bit.
 */
class EmaSetForeachTest {
    private static final String SPEC = "power:0.05,classic:0.9";
    private final Backend be = new CpuBackend(1);

    @Test
    void hostAndDeviceUpdatesEqualThePerTensorUpdate() {
        try (ModelWeights w = TrainingTestModels.weights(be, 1); EmaSet foreach = EmaSet.create(SPEC, w);
             EmaSet perTensor = EmaSet.create(SPEC, w); EmaSet device = EmaSet.create(SPEC, w);
             Tensor control = be.zeros(DType.F32, TrainingOps.CONTROL_SIZE)) {
            device.enableDeviceUpdate(10);
            for (int k = 1; k <= 3; k++) {
                for (ParameterTable.Entry e : w.table().entries()) {
                    if (e.kind() == ParameterTable.Kind.TRAINABLE) {
                        be.randomNormal(w.get(e.key()), 7, k * 100_000L);
                    }
                }
                foreach.update(w);
                perTensor.all().forEach(ema -> ema.update(w));
                device.updateOnDevice(w, be.training(), control);
            }
            device.pullDeviceUpdates();
            for (int i = 0; i < foreach.all().size(); i++) {
                Ema a = foreach.all().get(i), b = perTensor.all().get(i), d = device.all().get(i);
                assertEquals(3, a.updates());
                assertEquals(3, d.updates());
                for (ParameterTable.Entry e : w.table().entries()) {
                    float[] expected = be.download(b.weights().get(e.key()));
                    assertArrayEquals(expected, be.download(a.weights().get(e.key())), a.name() + " " + e.key());
                    assertArrayEquals(expected, be.download(d.weights().get(e.key())), d.name() + " device " + e.key());
                }
            }
        }
    }

    @Test
    void deviceUpdateNeedsEnabling() {
        try (ModelWeights w = TrainingTestModels.weights(be, 1); EmaSet set = EmaSet.create(SPEC, w);
             Tensor control = be.zeros(DType.F32, TrainingOps.CONTROL_SIZE)) {
            assertThrows(IllegalStateException.class, () -> set.updateOnDevice(w, be.training(), control));
        }
    }
}
