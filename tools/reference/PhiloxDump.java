import facm.tensor.Philox;

import java.io.BufferedOutputStream;
import java.io.DataOutputStream;
import java.io.FileOutputStream;
import java.io.IOException;

/**
 * Writes what facm.tensor.Philox produces for a range of counters, so check_philox_java.py can compare philox.py with
 * it bit for bit. Per counter, little-endian: w0 w1 w2 w3 (int32), uniform (float32 bits), normal (float32 bits).
 * Usage: java -cp CLASSES PhiloxDump.java SEED FIRST_COUNTER COUNT OUT_FILE
 */
public final class PhiloxDump {
    public static void main(String[] args) throws IOException {
        long seed = Long.parseLong(args[0]);
        long first = Long.parseUnsignedLong(args[1]);
        int count = Integer.parseInt(args[2]);
        int[] w = new int[4];
        try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(new FileOutputStream(args[3]), 1 << 16))) {
            for (int i = 0; i < count; i++) {
                long counter = first + i;
                Philox.block(seed, counter, w);
                for (int word : w) {
                    out.writeInt(Integer.reverseBytes(word));
                }
                out.writeInt(Integer.reverseBytes(Float.floatToRawIntBits(Philox.uniform(seed, counter))));
                out.writeInt(Integer.reverseBytes(Float.floatToRawIntBits(Philox.normal(seed, counter))));
            }
        }
    }
}
