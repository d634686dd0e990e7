package facm.training;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code peak_mem_gib}: the largest per-step peak of each logging interval, present only where it is tracked. */
class MetricsLogPeakMemoryTest {
    private static final long GIB = 1L << 30;
    private final ByteArrayOutputStream consoleBytes = new ByteArrayOutputStream();
    private final PrintStream console = new PrintStream(consoleBytes, true, StandardCharsets.UTF_8);

    private static List<JsonObject> lines(Path file) throws IOException {
        return Files.readAllLines(file).stream().map(l -> JsonParser.parseString(l).getAsJsonObject()).toList();
    }

    @Test
    void eachLineHasTheLargestPeakOfItsStepsThenStartsOver(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("metrics.jsonl");
        try (MetricsLog log = new MetricsLog(file, 0, 5, 4, 1e-3f, console)) {
            long[] peaks = {GIB, 3 * GIB + GIB / 2, 2 * GIB};
            for (int s = 0; s < 3; s++) {
                log.record(1f, 0.5, true, Map.of());
                log.recordPeakMemory(peaks[s]);
            }
            log.flush(3, 0);
            log.record(1f, 0.5, false, Map.of()); // a skipped step's memory still counts
            log.recordPeakMemory(GIB / 4);
            log.flush(4, 1);
        }
        List<JsonObject> l = lines(file);
        assertEquals(3.5, l.get(0).get("peak_mem_gib").getAsDouble());
        assertEquals(0.25, l.get(1).get("peak_mem_gib").getAsDouble());
        String out = consoleBytes.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("samples/s  peak 3.50 GiB  ETA"), out);
        assertTrue(out.contains("peak 0.25 GiB"), out);
    }

    @Test
    void untrackedMemoryLeavesTheKeyOut(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("metrics.jsonl");
        try (MetricsLog log = new MetricsLog(file, 0, 2, 4, 1e-3f, console)) {
            log.record(1f, 0.5, true, Map.of());
            log.recordPeakMemory(-1);
            log.flush(1, 0);
            log.record(1f, 0.5, true, Map.of());
            log.flush(2, 0);
        }
        for (JsonObject o : lines(file)) {
            assertFalse(o.has("peak_mem_gib"), o.toString());
        }
        assertFalse(consoleBytes.toString(StandardCharsets.UTF_8).contains("peak"));
    }

    @Test
    void gibHasFourDecimals() {
        assertEquals(0.0001, MetricsLog.gib(GIB / 10_000 + 1));
        assertEquals(0.0, MetricsLog.gib(GIB / 100_000));
        assertEquals(78.5, MetricsLog.gib(78 * GIB + GIB / 2));
    }

    @Test
    void theCpuDoesNotTrackMemory() {
        try (facm.backend.cpu.CpuBackend cpu = new facm.backend.cpu.CpuBackend(1)) {
            assertEquals(-1, cpu.peakMemoryBytes());
            cpu.resetPeakMemory();
            assertEquals(-1, cpu.peakMemoryBytes());
        }
    }
}
