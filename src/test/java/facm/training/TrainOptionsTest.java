package facm.training;

import com.google.gson.JsonObject;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainOptionsTest {
    private static JsonObject json(String s) {
        return TrainOptions.parseObject(s, "test");
    }

    @Test
    void defaultsThenLayersLaterOnesWinning() {
        TrainOptions o = TrainOptions.resolve(json("{\"out\":\"r\",\"objective\":\"fm\",\"steps\":7,\"weight-decay\":0.1,\"lr\":3e-4}"),
                json("{\"steps\":9}"));
        assertEquals(9, o.steps());
        assertEquals(0.1f, o.weightDecay());
        assertEquals(3e-4f, o.lr());
        assertEquals("tiny", o.model());
        assertEquals("fashion-mnist", o.data());
        assertEquals(1f, o.gradClip());
        assertEquals(0.9f, o.beta1());
        assertEquals(0.95f, o.beta2(), "fm = LightningDiT stage 1 betas");
        assertNull(o.init());
        assertEquals(new float[] {0.9f, 0.999f}[1], TrainOptions.resolve(json("{\"out\":\"r\",\"betas\":\"0.9,0.999\"}"))
                .beta2());
        assertEquals(0.98f, TrainOptions.resolve(json("{\"out\":\"r\",\"betas\":[0.8,0.98]}")).beta2());
    }

    @Test
    void jsonRoundTrip() {
        TrainOptions o = TrainOptions.resolve(json("{\"out\":\"r\",\"init\":\"a.pt\",\"precision\":\"BF16\","
                + "\"ema\":\"classic:0.9999\",\"seed\":-3}"));
        assertEquals("bf16", o.precision());
        assertEquals(o, TrainOptions.fromJson(o.toJson()));
        assertEquals(o, TrainOptions.fromJson(o.toPrettyJson()));
    }

    @Test
    void errorsNameTheProblem() {
        String[] bad = {"{\"out\":\"r\",\"stepz\":1}", "{\"out\":\"r\",\"steps\":0}", "{\"out\":\"r\",\"lr\":-1}",
            "{\"out\":\"r\",\"precision\":\"fp8\"}", "{\"out\":\"r\",\"ema\":\"power\"}", "{\"out\":\" \"}",
            "{\"out\":\"r\",\"steps\":\"many\"}", "{\"out\":\"r\",\"objective\":\"gan\"}",
            "{\"out\":\"r\",\"betas\":[0.9]}"};
        for (String b : bad) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> TrainOptions.resolve(json(b)), b);
            assertTrue(!e.getMessage().contains("\n") && e.getMessage().startsWith("train options"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> TrainOptions.parseObject("[1]", "x"));
        assertThrows(IllegalArgumentException.class, () -> TrainOptions.parseObject("{", "x"));
    }

    @Test
    void resumeMayChangeOnlyLengthBookkeepingDeviceAndFolder() {
        TrainOptions saved = TrainOptions.resolve(json("{\"out\":\"r\",\"steps\":10,\"lr\":0.001}"));
        TrainOptions longer = TrainOptions.forResume(saved, json("{\"steps\":20,\"out\":\"moved\",\"lr\":1e-3}"));
        assertEquals(20, longer.steps());
        assertEquals("moved", longer.out());
        assertEquals(saved.lr(), longer.lr());
        assertEquals(saved, TrainOptions.forResume(saved));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TrainOptions.forResume(saved, json("{\"lr\":0.01}")));
        assertTrue(e.getMessage().startsWith("resume: lr is"), e.getMessage());
    }
}
