package facm.training;

import java.io.PrintStream;
import java.util.concurrent.CountDownLatch;
import java.util.function.IntSupplier;

/**
 * While open, and if installed, a shutdown hook that turns Ctrl-C (SIGINT/SIGTERM) into a stop request of a
 * {@link Trainer} run and holds the JVM until {@link #close()} says the run has ended (its checkpoint written).
 */
final class CtrlCStop implements AutoCloseable {
    private final CountDownLatch finished = new CountDownLatch(1);
    private final Thread hook;
    private final boolean installed;

    /** {@code nextStep}: the step the run is finishing, for the message. */
    CtrlCStop(boolean install, Runnable requestStop, IntSupplier nextStep, PrintStream console) {
        this.installed = install;
        this.hook = new Thread(() -> {
            if (finished.getCount() == 0) {
                return;
            }
            requestStop.run();
            console.println();
            console.println("interrupted: finishing step " + nextStep.getAsInt() + " and writing a checkpoint "
                    + "(the write is atomic: killing the process now loses nothing saved before)");
            console.flush();
            try {
                finished.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "facm-train-shutdown");
        if (install) {
            Runtime.getRuntime().addShutdownHook(hook);
        }
    }

    @Override
    public void close() {
        finished.countDown();
        if (installed) {
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the JVM is exiting because of the signal; the hook has seen the latch
            }
        }
    }
}
