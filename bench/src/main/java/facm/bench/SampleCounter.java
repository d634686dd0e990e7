package facm.bench;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Training samples and TFLOP done, for the training-step benchmarks; JMH divides each by the iteration's wall time
 * (samples/s, TFLOP/s). Public and top-level because JMH's generated code must reach it.
 */
@State(Scope.Thread)
@AuxCounters(AuxCounters.Type.OPERATIONS)
public class SampleCounter {
    public double samples;
    public double teraflop;

    @Setup(Level.Iteration)
    public void reset() {
        samples = 0;
        teraflop = 0;
    }
}
