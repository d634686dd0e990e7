package facm.io;

import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Reads one .npy entry of an .npz for tests, checking the .npy 1.0 framing on the way. */
public final class NpzTestReader {
    private NpzTestReader() {
    }

    /** One parsed .npy: the header dict and the data bytes. */
    public record Npy(String header, ByteBuffer data) {
    }

    public static Npy read(ZipFile zip, String name) throws Exception {
        ZipEntry e = zip.getEntry(name + ".npy");
        assertTrue(e != null, "entry " + name + ".npy");
        assertEquals(ZipEntry.STORED, e.getMethod(), "stored like np.savez");
        byte[] all;
        try (InputStream in = zip.getInputStream(e)) {
            all = in.readAllBytes();
        }
        assertEquals((byte) 0x93, all[0]);
        assertEquals("NUMPY", new String(all, 1, 5, StandardCharsets.US_ASCII));
        assertEquals(1, all[6], "major version");
        assertEquals(0, all[7], "minor version");
        int headerLen = (all[8] & 0xFF) | (all[9] & 0xFF) << 8;
        assertEquals(0, (10 + headerLen) % 64, "data aligned to 64 bytes");
        String header = new String(all, 10, headerLen, StandardCharsets.US_ASCII);
        assertTrue(header.endsWith("\n"));
        ByteBuffer data = ByteBuffer.wrap(all, 10 + headerLen, all.length - 10 - headerLen).slice()
                .order(ByteOrder.LITTLE_ENDIAN);
        return new Npy(header.strip(), data);
    }
}
