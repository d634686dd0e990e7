package facm.cli;

import facm.cuda.CudaException;
import facm.tensor.ShapeException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code java -jar facm-engine.jar <command>}. Every failure a user can cause (bad input, no GPU, no kernels) ends as
 * one line on stderr and exit code 1; {@code --stacktrace} shows the Java stack as well.
 */
@Command(name = "facm-engine", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Flow-Anchored Consistency Models: training and one-step sampling on CUDA or CPU.",
        subcommands = {InfoCommand.class, TrainCommand.class, SampleCommand.class, EvalCommand.class, ConvertCommand.class, TrainClassifierCommand.class,
                PortCheckCommand.class,
                AutotuneCommand.class,
                CommandLine.HelpCommand.class},
        commandListHeading = "%nCommands:%n")
public final class Main implements Runnable {

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code (tests call this instead of main). */
    public static int run(String... args) {
        boolean stack = java.util.Arrays.asList(args).contains("--stacktrace");
        String[] rest = java.util.Arrays.stream(args).filter(a -> !a.equals("--stacktrace")).toArray(String[]::new);
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((ex, line, parsed) -> {
            if (stack) {
                ex.printStackTrace();
            }
            System.err.println("error: " + oneLine(ex));
            return 1;
        });
        return cl.execute(rest);
    }

    static String oneLine(Throwable ex) {
        Throwable t = ex;
        while ((t.getMessage() == null || t.getMessage().isEmpty()) && t.getCause() != null) {
            t = t.getCause();
        }
        if (t instanceof java.nio.file.NoSuchFileException nf) {
            return "file not found: " + nf.getFile();
        }
        if (t instanceof java.nio.file.AccessDeniedException ad) {
            return "permission denied: " + ad.getFile();
        }
        String m = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
        if (!(t instanceof CudaException || t instanceof ShapeException || t instanceof IllegalArgumentException
                || t instanceof java.io.IOException || t instanceof IllegalStateException)) {
            m = t.getClass().getSimpleName() + ": " + m;
        }
        return m.replace('\n', ' ');
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            return new String[] {"facm-engine " + (v == null ? "(development build)" : v)};
        }
    }
}
