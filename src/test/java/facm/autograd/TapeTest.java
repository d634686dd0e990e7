package facm.autograd;

import facm.backend.cpu.CpuBackend;
import facm.tensor.DType;
import facm.tensor.GemmPrecision;
import facm.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The tape's bookkeeping on a two-layer linear network with a shared input (needs only GEMM, reduce and axpby):
 * gradients against float64 hand computations, accumulation into parameter buffers, stop-gradient, and freeing.
 */
class TapeTest {

    /** y = W2·(W1·x + b1 + x) (x shared by two consumers), L = Σ r ⊙ y; all gradients in closed form. */
    @Test
    void linearChainGradientsMatchTheClosedFormAndAccumulate() {
        int rows = 3;
        int d = 4;
        try (CpuBackend be = new CpuBackend(1)) {
            float[] xv = values(rows * d, 1);
            float[] w1v = values(d * d, 2);
            float[] b1v = values(d, 3);
            float[] w2v = values(2 * d, 4);
            float[] rv = values(rows * 2, 5);
            Tensor x = be.upload("x", xv, rows, d);
            Tensor w1 = be.upload("w1", w1v, d, d);
            Tensor b1 = be.upload("b1", b1v, d);
            Tensor w2 = be.upload("w2", w2v, 2, d);
            Tensor r = be.upload("r", rv, rows, 2);
            Tensor gw1 = be.zeros(DType.F32, d, d);
            Tensor gb1 = be.zeros(DType.F32, d);
            Tensor gw2 = be.zeros(DType.F32, 2, d);
            for (int round = 1; round <= 2; round++) {
                try (Tape tape = new Tape(be)) {
                    tape.trackParameter(w1, gw1);
                    tape.trackParameter(b1, gb1);
                    tape.trackParameter(w2, gw2);
                    tape.track(x);
                    Tensor y;
                    try (ForwardPass pass = new ForwardPass(be, GemmPrecision.FP32, tape)) {
                        Tensor h = pass.linear("h", x, w1, b1);
                        Tensor s = pass.add("s", h, x);
                        pass.release(h);
                        y = pass.keep(pass.linear("y", s, w2, null));
                        pass.release(s);
                    }
                    assertEquals(3, tape.size());
                    tape.backward(y, r);
                    // closed form in float64: g_s = r·W2, g_h = g_s, g_x = g_s·W1 + g_s
                    double[] gs = new double[rows * d];
                    for (int i = 0; i < rows; i++) {
                        for (int j = 0; j < d; j++) {
                            for (int o = 0; o < 2; o++) {
                                gs[i * d + j] += rv[i * 2 + o] * w2v[o * d + j];
                            }
                        }
                    }
                    double[] gx = gs.clone();
                    for (int i = 0; i < rows; i++) {
                        for (int j = 0; j < d; j++) {
                            for (int k = 0; k < d; k++) {
                                gx[i * d + j] += gs[i * d + k] * w1v[k * d + j];
                            }
                        }
                    }
                    assertClose(gx, be.download(tape.grad(x)), 1, "dL/dx");
                    double[] gw1Want = new double[d * d];
                    double[] gb1Want = new double[d];
                    for (int i = 0; i < rows; i++) {
                        for (int k = 0; k < d; k++) {
                            gb1Want[k] += gs[i * d + k];
                            for (int j = 0; j < d; j++) {
                                gw1Want[k * d + j] += gs[i * d + k] * xv[i * d + j];
                            }
                        }
                    }
                    // parameter buffers accumulate: after round 2 they hold twice the gradient
                    assertClose(gw1Want, be.download(gw1), round, "dL/dW1");
                    assertClose(gb1Want, be.download(gb1), round, "dL/db1");
                    assertEquals(0, tape.size(), "records are dropped once run");
                    y.close();
                }
            }
        }
    }

    @Test
    void untrackedInputsGetNoGradientAndOpsOnThemRecordNothing() {
        try (CpuBackend be = new CpuBackend(1); Tape tape = new Tape(be)) {
            Tensor x = be.upload("x", values(8, 1), 2, 4);
            Tensor w = be.upload("w", values(12, 2), 3, 4);
            Tensor gw = be.zeros(DType.F32, 3, 4);
            try (ForwardPass pass = new ForwardPass(be, GemmPrecision.FP32, tape)) {
                Tensor frozen = pass.linear("frozen", x, be.upload("w0", values(16, 3), 4, 4), null);
                assertEquals(0, tape.size(), "no tracked input: nothing recorded");
                assertFalse(tape.requiresGrad(frozen));
                tape.trackParameter(w, gw);
                Tensor y = pass.linear("y", frozen, w, null);
                assertEquals(1, tape.size());
                tape.backward(y, be.upload("r", values(6, 4), 2, 3));
                assertNull(tape.grad(frozen), "stop-gradient: the frozen branch gets nothing");
                assertNull(tape.grad(x));
                assertTrue(norm(be.download(gw)) > 0);
            }
        }
    }

    @Test
    void stopGradientCutsTheGradientPathButKeepsTheValues() {
        try (CpuBackend be = new CpuBackend(1); Tape tape = new Tape(be)) {
            Tensor x = be.upload("x", values(8, 1), 2, 4);
            Tensor w1 = be.upload("w1", values(16, 2), 4, 4);
            Tensor w2 = be.upload("w2", values(16, 3), 4, 4);
            Tensor g1 = be.zeros(DType.F32, 4, 4);
            Tensor g2 = be.zeros(DType.F32, 4, 4);
            tape.trackParameter(w1, g1);
            tape.trackParameter(w2, g2);
            try (ForwardPass pass = new ForwardPass(be, GemmPrecision.FP32, tape)) {
                Tensor h = pass.linear("h", x, w1, null);
                Tensor sg = Tape.stopGradient(h);
                assertFalse(tape.requiresGrad(sg));
                Tensor y = pass.linear("y", sg, w2, null);
                assertArrayEquals(be.download(h), be.download(sg));
                tape.backward(y, be.upload("r", values(8, 4), 2, 4));
            }
            assertEquals(0.0, norm(be.download(g1)), "no gradient through sg(h) to W1");
            assertTrue(norm(be.download(g2)) > 0, "W2 still gets its gradient");
        }
    }

    @Test
    void savedTensorsAreFreedDuringBackwardAndTheTapeRunsOnce() {
        try (CpuBackend be = new CpuBackend(1)) {
            Tensor x = be.upload("x", values(8, 1), 2, 4);
            Tensor w = be.upload("w", values(16, 2), 4, 4);
            Tensor gw = be.zeros(DType.F32, 4, 4);
            Tape tape = new Tape(be);
            tape.trackParameter(w, gw);
            Tensor h;
            Tensor y;
            try (ForwardPass pass = new ForwardPass(be, GemmPrecision.FP32, tape)) {
                h = pass.linear("h", x, w, null);
                y = pass.keep(pass.linear("y", h, w, null));
                pass.release(h);
            }
            assertTrue(tape.owns(h) && !h.isClosed(), "h is saved for the second linear's weight gradient");
            tape.backward(y, be.upload("r", values(8, 3), 2, 4));
            assertTrue(h.isClosed(), "saved activations are freed by the backward");
            assertThrows(IllegalStateException.class, () -> tape.backward(y, y));
            tape.close();
            tape.close();
        }
    }

    @Test
    void bf16PassGradientsAreCloseToFp32() {
        try (CpuBackend be = new CpuBackend(1)) {
            Tensor x = be.upload("x", values(6 * 32, 1), 6, 32);
            Tensor w = be.upload("w", values(16 * 32, 2), 16, 32);
            Tensor r = be.upload("r", values(6 * 16, 3), 6, 16);
            float[][] grads = new float[2][];
            for (GemmPrecision p : new GemmPrecision[] {GemmPrecision.FP32, GemmPrecision.BF16}) {
                Tensor gw = be.zeros(DType.F32, 16, 32);
                try (Tape tape = new Tape(be); ForwardPass pass = new ForwardPass(be, p, tape)) {
                    tape.trackParameter(w, gw);
                    Tensor y = pass.linear("y", x, w, null);
                    tape.backward(y, r);
                }
                grads[p == GemmPrecision.FP32 ? 0 : 1] = be.download(gw);
            }
            double err = 0;
            for (int i = 0; i < grads[0].length; i++) {
                err = Math.max(err, Math.abs(grads[0][i] - grads[1][i]));
            }
            assertTrue(err / maxAbs(grads[0]) < 1.5e-2, "bf16 vs fp32 weight gradient: " + err);
        }
    }

    static float[] values(int n, long seed) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = facm.tensor.Philox.normal(seed, i) * 0.5f;
        }
        return v;
    }

    private static void assertClose(double[] want, float[] got, int times, String what) {
        double scale = 0;
        for (double w : want) {
            scale = Math.max(scale, Math.abs(w) * times);
        }
        for (int i = 0; i < want.length; i++) {
            double diff = Math.abs(want[i] * times - got[i]);
            assertTrue(diff <= 1e-5 * scale + 1e-6, what + "[" + i + "]: want " + want[i] * times + ", got " + got[i]);
        }
    }

    private static double maxAbs(float[] v) {
        double m = 0;
        for (float x : v) {
            m = Math.max(m, Math.abs(x));
        }
        return m;
    }

    private static double norm(float[] v) {
        double s = 0;
        for (float x : v) {
            s += (double) x * x;
        }
        return Math.sqrt(s);
    }
}
