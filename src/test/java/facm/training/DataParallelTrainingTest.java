package facm.training;

import com.google.gson.JsonParser;
import facm.cli.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code train --workers N} end to end on the CPU: real worker JVMs on loopback, the tiny4 model, the bundled
 * Fashion-MNIST, the stage-1 objective.
 *
 * <p>Tolerance: 2 workers × B/2 against 1 process × B agree to 2e-5 relative per logged loss. The samples, noise and
 * times are the same draws (indexed by global position); only the order of the floating-point sums differs (per-rank
 * means averaged vs one mean, the gradient average in double), and 4 Adam steps do not amplify that beyond ~1e-6.
 */
class DataParallelTrainingTest {
    private static final double LOSS_RTOL = 2e-5;

    private static List<String> args(Path out, int steps, String... more) {
        return args(out, steps, 2, more);
    }

    private static List<String> args(Path out, int steps, int ckptEvery, String... more) {
        List<String> a = new ArrayList<>(List.of("train", "--objective", "fm", "--model", "tiny4", "--data",
                "fashion-mnist", "--batch", "4", "--device", "cpu", "--seed", "3", "--log-every", "1",
                "--ckpt-every", Integer.toString(ckptEvery), "--sample-every", "0", "--ema", "power:0.2", "--steps", Integer.toString(steps),
                "--out", out.toString()));
        a.addAll(List.of(more));
        return a;
    }

    /** Runs Main with stdout captured (the launcher's relay and messages), returning {exit code, output}. */
    private static Object[] run(List<String> args) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream tee = new PrintStream(new OutputStream() {
            @Override
            public void write(int b) {
                buf.write(b);
                old.write(b);
            }

            @Override
            public void write(byte[] b, int off, int len) {
                buf.write(b, off, len);
                old.write(b, off, len);
            }
        }, true, StandardCharsets.UTF_8);
        System.setOut(tee);
        try {
            int code = Main.run(args.toArray(String[]::new));
            return new Object[] {code, buf.toString(StandardCharsets.UTF_8)};
        } finally {
            System.setOut(old);
        }
    }

    private static double[] losses(Path out) throws Exception {
        return Files.readAllLines(out.resolve("metrics.jsonl")).stream()
                .mapToDouble(l -> JsonParser.parseString(l).getAsJsonObject().get("loss").getAsDouble()).toArray();
    }

    private static void assertClose(double[] expected, double[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": number of logged steps");
        for (int i = 0; i < expected.length; i++) {
            double rel = Math.abs(expected[i] - actual[i]) / Math.abs(expected[i]);
            assertTrue(rel <= LOSS_RTOL, what + ": step " + (i + 1) + " loss " + actual[i] + " vs " + expected[i]
                    + " (rel " + rel + ")");
        }
    }

    @Test
    void twoWorkersMatchOneProcessAndResumeOnAnyNumberOfRanks(@TempDir Path dir) throws Exception {
        Path single = dir.resolve("single");
        assertEquals(0, run(args(single, 4))[0]);
        double[] reference = losses(single);

        Path two = dir.resolve("two");
        Object[] r = run(args(two, 4, "--workers", "2"));
        assertEquals(0, r[0], (String) r[1]);
        assertTrue(((String) r[1]).contains("[rank 0]"), "worker output is relayed with the rank");
        assertClose(reference, losses(two), "2 workers x B/2 vs 1 x B");
        assertTrue(JsonParser.parseString(Files.readAllLines(two.resolve("metrics.jsonl")).getFirst())
                .getAsJsonObject().has("allreduce_ms"), "the all-reduce time is logged");

        // 2 steps on 2 workers, then resume on 1 process (and the other way round): the same run.
        Path mixed = dir.resolve("mixed");
        assertEquals(0, run(args(mixed, 2, "--workers", "2"))[0]);
        assertEquals(0, run(List.of("train", "--resume", "--out", mixed.toString(), "--steps", "3"))[0]);
        assertEquals(0, run(List.of("train", "--resume", "--out", mixed.toString(), "--steps", "4", "--workers",
                "2"))[0]);
        assertClose(reference, losses(mixed), "2 workers, then 1, then 2 again");

        Object[] odd = run(args(dir.resolve("odd"), 1, "--workers", "3"));
        assertEquals(1, odd[0], "a batch of 4 does not split over 3 ranks");
    }

    /**
     * ZeRO-1: the sharded optimizer gives the unsharded losses within the same tolerance (the averaged gradients are
     * the same values; only the norm's summation order differs), and its checkpoints are whole: a sharded run resumes
     * unsharded on one process and sharded again on 2 ranks, and still follows the reference.
     */
    @Test
    void shardedOptimizerMatchesAndItsCheckpointsInterchange(@TempDir Path dir) throws Exception {
        Path single = dir.resolve("single");
        assertEquals(0, run(args(single, 4))[0]);
        double[] reference = losses(single);

        Path sharded = dir.resolve("sharded");
        Object[] r = run(args(sharded, 4, "--workers", "2", "--shard-optimizer"));
        assertEquals(0, r[0], (String) r[1]);
        assertClose(reference, losses(sharded), "2 workers sharded vs 1 x B");

        Path mixed = dir.resolve("mixed");
        assertEquals(0, run(args(mixed, 2, "--workers", "2", "--shard-optimizer"))[0]);
        assertEquals(0, run(List.of("train", "--resume", "--out", mixed.toString(), "--steps", "3"))[0]);
        assertEquals(0, run(List.of("train", "--resume", "--out", mixed.toString(), "--steps", "4", "--workers",
                "2", "--shard-optimizer"))[0]);
        assertClose(reference, losses(mixed), "sharded on 2, unsharded on 1, sharded on 2");
    }

    @Test
    void aKilledWorkerStopsTheJobAndResumeContinues(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("run");
        List<String> a = args(out, 400, 1, "--workers", "2");
        long before = ProcessHandle.current().children().count();
        CompletableFuture<Object[]> job = CompletableFuture.supplyAsync(() -> run(a));
        Path last = Trainer.lastCheckpoint(out);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!Files.exists(last) && System.nanoTime() < deadline && !job.isDone()) {
            Thread.sleep(100);
        }
        assertTrue(Files.exists(last), "the job wrote a checkpoint before the kill");
        List<ProcessHandle> workers = ProcessHandle.current().children().filter(ProcessHandle::isAlive).toList();
        assertEquals(before + 2, workers.size(), "two worker JVMs");
        ProcessHandle victim = workers.stream().max(java.util.Comparator.comparingLong(ProcessHandle::pid)).get();
        victim.destroyForcibly();

        Object[] r = job.get(60, TimeUnit.SECONDS);
        String output = (String) r[1];
        assertEquals(1, r[0], output);
        assertTrue(output.matches("(?s).*train: worker rank [01] \\(pid " + victim.pid()
                + "\\) exited with code 137 \\(killed\\); stopped the other 1 worker\\(s\\).*"), output);
        for (ProcessHandle w : workers) {
            assertFalse(w.isAlive(), "no worker left behind: pid " + w.pid());
        }

        int stepAtKill = TrainState.peek(last).counters().step();
        assertTrue(stepAtKill >= 1 && stepAtKill < 400);
        assertEquals(0, run(List.of("train", "--resume", "--out", out.toString(), "--steps",
                Integer.toString(stepAtKill + 2), "--workers", "2"))[0]);
        assertEquals(stepAtKill + 2, TrainState.peek(last).counters().step(), "the restart continued");
    }
}
