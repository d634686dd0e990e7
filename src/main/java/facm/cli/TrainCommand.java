package facm.cli;

import com.google.gson.JsonObject;
import facm.backend.Backends;
import facm.data.BatchLoader;
import facm.distributed.DistributedTraining;
import facm.data.Dataset;
import facm.data.Datasets;
import facm.model.ModelCheckpoint;
import facm.model.ModelConfig;
import facm.model.ModelWeights;
import facm.model.Presets;
import facm.objectives.ConsistencyObjective;
import facm.objectives.FlowMatchingObjective;
import facm.tensor.Backend;
import facm.tensor.GemmPrecision;
import facm.training.ModelInitializer;
import facm.training.Objective;
import facm.training.TrainOptions;
import facm.training.TrainState;
import facm.training.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * {@code train}: stage-1 flow-matching training (facm-spec.md §4) with AdamW, gradient clipping, EMAs, checkpoints,
 * sample grids and exact resume. Options come from the defaults, then {@code --config FILE} (JSON with the flag names
 * as keys), then the flags given; the result is printed and written to {@code OUT/config.json} (itself a valid
 * {@code --config}).
 */
@Command(name = "train", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Train a LightningDiT. Writes OUT/config.json, OUT/metrics.jsonl, OUT/checkpoints/"
                + "step-NNNNNNN.safetensors + last.safetensors (model, EMAs, optimizer, counters) and, for image data, "
                + "OUT/samples/step-NNNNNNN.png. Ctrl-C finishes the current step and writes a checkpoint; "
                + "--resume continues from OUT/checkpoints/last.safetensors exactly.")
final class TrainCommand implements Runnable {
    @Option(names = "--objective", description = "facm (default: FACM, facm-spec §5.2), fm (stage-1 flow matching "
            + "with the expanded interval, trains a teacher), scm or meanflow (the baselines of §5.7)")
    String objective;
    @Option(names = "--teacher", description = "facm/scm/meanflow: distill from this frozen FM teacher checkpoint "
            + "(the student starts from its weights unless --init is given); without it the ground-truth velocity "
            + "is used (training from scratch)")
    Path teacher;
    @Option(names = "--model", description = "model preset (default tiny), adapted to the data's size, channels "
            + "and classes; one of ${COMPLETION-CANDIDATES}", completionCandidates = PresetNames.class)
    String model;
    @Option(names = "--data", description = "fashion-mnist (bundled test split; default), a folder of IDX files, "
            + "of latent shards, or of class sub-folders of images")
    String data;
    @Option(names = "--steps", description = "optimizer iterations in all (default 1000)")
    Integer steps;
    @Option(names = "--batch", description = "samples per step (default 64)")
    Integer batch;
    @Option(names = "--lr", description = "AdamW learning rate, constant (default 1e-4)")
    Float lr;
    @Option(names = "--betas", description = "AdamW beta1,beta2 (default 0.9,0.95 for fm)")
    String betas;
    @Option(names = "--eps", description = "AdamW epsilon (default 1e-8)")
    Float eps;
    @Option(names = "--weight-decay", description = "AdamW decoupled weight decay (default 0)")
    Float weightDecay;
    @Option(names = "--grad-clip", description = "clip the global gradient L2 norm to this (default 1.0; 0 = off)")
    Float gradClip;
    @Option(names = "--ema", description = "EMA copies: power:SIGMA_REL and/or classic:DECAY, comma-separated, or "
            + "none (default power:0.05,power:0.2; grids sample the last one)")
    String ema;
    @Option(names = "--device", description = "cpu | cuda | cuda:N | auto (default)")
    String device;
    @Option(names = "--precision", description = "fp32 (default) | tf32 | bf16 (bf16 GEMMs, fp32 master weights)")
    String precision;
    @Option(names = "--seed", description = "seed of every random choice: init, data order, noise (default 0)")
    Long seed;
    @Option(names = "--out", description = "run folder (default runs/OBJECTIVE)")
    Path out;
    @Option(names = "--init", description = "start from this checkpoint's model weights (its config decides the "
            + "architecture)")
    Path init;
    @Option(names = "--resume", description = "continue the run in --out from checkpoints/last.safetensors")
    boolean resume;
    @Option(names = "--shard-optimizer", description = "data-parallel: keep the AdamW moments sharded over the ranks "
            + "(ZeRO-1); checkpoints stay whole, so a run may switch it on or off at a resume")
    boolean shardOptimizer;
    @Option(names = "--cuda-graph-step", description = "facm/scm/meanflow on one GPU: the whole step (teacher, FM "
            + "and JVP passes, backward, clip, AdamW, EMAs) captured once as a CUDA graph and replayed, its per-step "
            + "inputs drawn and its losses logged on the device (the same results bit for bit, a few % faster, more "
            + "memory for the graph's pool); default off; not with --gpus; fm is refused (host inputs)")
    boolean cudaGraphStep;
    @Option(names = "--checkpoint-blocks", description = "activation checkpointing: each block keeps only its input "
            + "and recomputes its forward in the backward (FM pass; less memory, same gradients, more time); may "
            + "change at a resume")
    boolean checkpointBlocks;
    @Option(names = "--log-every", description = "steps per metrics line (default 10)")
    Integer logEvery;
    @Option(names = "--ckpt-every", description = "steps per checkpoint (default 1000; 0 = only at the end)")
    Integer ckptEvery;
    @Option(names = "--sample-every", description = "steps per sample grid (default 1000; 0 = never)")
    Integer sampleEvery;
    @Option(names = "--sample-steps", description = "Euler steps of the sample grids (default 32)")
    Integer sampleSteps;
    @Option(names = "--label-dropout", description = "fm: probability of the null class per sample (default 0.1)")
    Float labelDropout;
    @Option(names = "--expanded-interval", negatable = true, description = "fm: half of each batch trains time "
            + "2 - t (default on)")
    Boolean expandedInterval;
    @Option(names = "--time-sampler", description = "stage 2: default (t = 1 - 2/pi atan(exp n)) | log "
            + "(t = 1 - sigmoid n), n ~ N(time-mean, time-std^2)")
    String timeSampler;
    @Option(names = "--time-mean", description = "stage 2: mean of n (default -0.8)")
    Float timeMean;
    @Option(names = "--time-std", description = "stage 2: std of n (default 1.6)")
    Float timeStd;
    @Option(names = "--relax-p", description = "facm: p of the relaxation alpha(t) = 1 - t^p (default 0.5)")
    Float relaxP;
    @Option(names = "--cfg-scale", description = "stage 2: guidance scale w baked into the velocity target (default "
            + "1.75; <= 1 = none)")
    Float cfgScale;
    @Option(names = "--cfg-interval", description = "stage 2: guidance only for t in [low,high] (default 0.125,1.0)")
    String cfgInterval;
    @Option(names = "--cm-clip", description = "facm: elementwise clip of the CM residual (default 1; 0 = none)")
    Float cmClip;
    @Option(names = "--norm-eps", description = "stage 2: c of the norm-L2 weighting e/sg((e+c)^p) (default 1e-3)")
    Float normEps;
    @Option(names = "--scm-warmup", description = "scm: tangent warm-up steps (default 10000)")
    Integer scmWarmup;
    @Option(names = "--r2t-ratio", description = "meanflow: fraction of samples with r = t (default 0)")
    Float r2tRatio;
    @Option(names = "--aux-time", negatable = true, description = "stage 2: give the student the auxiliary time "
            + "embedder (facm-spec §3.7; required by meanflow; default off = FACM's expanded interval)")
    Boolean auxTime;
    @Option(names = "--gpus", description = "data-parallel training on N local GPUs: one worker process per GPU "
            + "(device LOCAL_RANK), --batch is the global batch (a multiple of N); see docs/distributed.md")
    Integer gpus;
    @Option(names = "--workers", description = "data-parallel training with N CPU worker processes (tests, CPU users; "
            + "same launcher as --gpus, gradients averaged over TCP)")
    Integer workers;
    @Option(names = "--rendezvous-timeout", description = "seconds every rank waits for the others to arrive at "
            + "MASTER_ADDR:MASTER_PORT (default 120)")
    Integer rendezvousTimeout;
    @Option(names = "--collective-timeout", description = "seconds a rank waits for its peers inside a step before "
            + "it gives up on them (default 600)")
    Integer collectiveTimeout;
    @Option(names = "--config", description = "JSON file of options (keys as the flags: \"steps\", \"weight_decay\", "
            + "...), or 'default' for the embedded default job; flags override it")
    Path config;

    /** {@code train} with no arguments at all runs this embedded config: the main job (README, first command). */
    static final String DEFAULT_JOB = "/facm/train/default-job.json";

    /** Preset names for the help text. */
    static final class PresetNames extends java.util.ArrayList<String> {
        private static final long serialVersionUID = 1L;

        PresetNames() {
            super(Presets.all().keySet());
        }
    }

    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        try {
            int launch = launchCount();
            if (launch > 0) {
                int code = DistributedTraining.launch(spec.commandLine().getParseResult().originalArgs(), launch,
                        gpus != null ? "cuda" : "cpu");
                if (code != 0) {
                    throw new IllegalStateException("data-parallel job failed (exit code " + code + ")");
                }
                return;
            }
            train();
        } catch (java.nio.file.NoSuchFileException e) {
            throw new IllegalArgumentException("file not found: " + e.getFile(), e);
        } catch (IOException e) {
            throw new IllegalStateException(e.getMessage() == null ? e.toString() : e.getMessage(), e);
        }
    }

    /** The worker count to launch, or 0 when this process trains itself (one process, or a worker of a job). */
    private int launchCount() {
        if (gpus != null && workers != null) {
            throw new IllegalArgumentException("--gpus and --workers exclude each other (--gpus: CUDA, --workers: CPU)");
        }
        Integer n = gpus != null ? gpus : workers;
        if (n == null) {
            return 0;
        }
        if (n < 1) {
            throw new IllegalArgumentException((gpus != null ? "--gpus" : "--workers") + " must be >= 1, got " + n);
        }
        return facm.distributed.WorldRank.inEnvironment(System.getenv()) ? 0 : n;
    }

    private static String hostName() {
        try {
            return java.net.InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "this host";
        }
    }

    private void train() throws IOException {
        DistributedTraining dist = DistributedTraining.fromEnvironment(rendezvousTimeout, collectiveTimeout);
        java.io.PrintStream out = dist.console();
        JsonObject fromFile = TrainOptionLayers.configLayer(this);
        JsonObject fromFlags = TrainOptionLayers.flags(this);
        TrainOptions options = TrainOptions.resolve(fromFile, fromFlags);
        Path runDir = Path.of(options.out());
        Path last = Trainer.lastCheckpoint(runDir);
        TrainState.Header resumed = null;
        if (resume) {
            if (!Files.exists(last)) {
                if (dist.world().distributed() && !dist.world().isMaster()) {
                    throw new IllegalArgumentException("--resume: rank " + dist.world().rank() + " (local rank "
                            + dist.world().localRank() + " on " + hostName() + ") has no " + last + ": rank 0 "
                            + "writes checkpoints on its own host only; copy that file from rank 0's host to the "
                            + "same path here (or put --out on a shared file system) before resuming");
                }
                throw new IllegalArgumentException("--resume: no checkpoint at " + last);
            }
            resumed = TrainState.peek(last);
            options = TrainOptions.forResume(resumed.options(), fromFile, fromFlags);
            if (resumed.counters().step() >= options.steps()) {
                out.printf(Locale.ROOT, "%s is at step %d of %d already: nothing to do (raise --steps to "
                        + "continue)%n", last, resumed.counters().step(), options.steps());
                return;
            }
        } else if (Files.exists(last)) {
            throw new IllegalArgumentException(runDir + " already holds a run (" + last + "): pass --resume to "
                    + "continue it, or choose another --out");
        }
        GemmPrecision gemm = GemmPrecision.valueOf(options.precision().toUpperCase(Locale.ROOT));
        ConsistencyObjective.Options stage2 = stage2Options(options); // validated before anything heavy
        try (Dataset dataset = Datasets.open(options.data())) {
            ModelConfig preset = Presets.get(options.model()).withData(dataset.height(), dataset.channels(),
                    dataset.numClasses());
            StartingWeights.Source teacherSrc = options.stage2().teacher() == null ? null
                    : StartingWeights.teacherSource(Path.of(options.stage2().teacher()), preset);
            if (teacherSrc != null) {
                requireFits(teacherSrc.config(), dataset);
            }
            ModelConfig cfg = resumed != null ? resumed.config() : modelConfig(options, preset, teacherSrc);
            requireFits(cfg, dataset);
            Backends.Selection sel = Backends.select(dist.deviceSpec(options.device()));
            out.println("device:  " + sel.why());
            out.println("model:   " + cfg.summary());
            if (teacherSrc != null) {
                out.println("teacher: " + teacherSrc.describe() + ", " + teacherSrc.config().summary());
            }
            out.println("data:    " + dataset.describe());
            out.println("options: " + options.toPrettyJson().replace("\n", "\n         "));
            if (dist.world().isMaster()) {
                Files.createDirectories(runDir);
                Files.writeString(runDir.resolve("config.json"), options.toPrettyJson() + "\n",
                        StandardCharsets.UTF_8);
            }
            try (Backend be = sel.backend();
                 ModelWeights teacherWeights = teacherSrc == null ? null : StartingWeights.teacher(teacherSrc, be);
                 ModelWeights weights = startingWeights(options, cfg, be, resumed, teacherSrc);
                 Objective obj = stage2 == null ? new FlowMatchingObjective(options.seed(), gemm,
                         new FlowMatchingObjective.Options(options.labelDropout(), options.expandedInterval()))
                         : new ConsistencyObjective(options.seed(), gemm, stage2, teacherWeights);
                 facm.distributed.Communicator comm = dist.connect(be);
                 Trainer trainer = new Trainer(options, weights, obj, be.training(), runDir, out, comm,
                         shardOptimizer)) {
                obj.checkpointBlocks(checkpointBlocks);
                if (cudaGraphStep) {
                    trainer.useDeviceStep(true);
                }
                if (resumed != null) {
                    trainer.resume(last);
                    out.printf(Locale.ROOT, "resumed from %s at step %d (data position %d)%n", last,
                            trainer.step(), trainer.dataPosition());
                }
                Trainer.Result r;
                try (BatchLoader loader = new BatchLoader(dataset, options.batch(), options.seed(),
                        trainer.dataPosition(), dist.world().rank(), dist.world().worldSize())) {
                    r = trainer.run(loader::next, true);
                }
                if (r.stopped()) {
                    out.printf(Locale.ROOT, "stopped at step %d of %d; continue with: train --resume --out "
                            + "%s%n", r.step(), options.steps(), runDir);
                } else {
                    out.printf(Locale.ROOT, "done: %d steps (%d skipped); last checkpoint %s%n", r.step(),
                            r.skippedSteps(), r.lastCheckpoint());
                }
            }
        }
    }

    /** The stage-2 objective's options (null for fm), validated. */
    static ConsistencyObjective.Options stage2Options(TrainOptions o) {
        if (o.objective().equals("fm")) {
            return null;
        }
        TrainOptions.Stage2 s = o.stage2();
        return new ConsistencyObjective.Options(ConsistencyObjective.Kind.of(o.objective()), s.timeSampler(),
                s.timeMean(), s.timeStd(), s.relaxP(), s.cfgScale(), s.cfgLow(), s.cfgHigh(), s.cmClip(), s.normEps(),
                s.scmWarmup(), s.r2tRatio());
    }

    /**
     * The architecture: the --init checkpoint's, else the teacher's, else the preset adapted to the data; with the
     * auxiliary time embedder added when asked for.
     */
    private static ModelConfig modelConfig(TrainOptions o, ModelConfig preset, StartingWeights.Source teacher)
            throws IOException {
        ModelConfig base = o.init() != null ? ModelCheckpoint.configOf(Path.of(o.init()), preset)
                : teacher != null ? teacher.config() : preset;
        return o.stage2().auxTime() ? base.withAuxTime(true) : base;
    }

    private static void requireFits(ModelConfig c, Dataset d) {
        if (d.height() != d.width() || c.inputSize() != d.height() || c.inChannels() != d.channels()
                || c.numClasses() != d.numClasses()) {
            throw new IllegalArgumentException("model " + c.name() + " takes " + c.inChannels() + "x" + c.inputSize()
                    + "x" + c.inputSize() + " inputs with " + c.numClasses() + " classes, but the data is "
                    + d.channels() + "x" + d.height() + "x" + d.width() + " with " + d.numClasses() + " classes");
        }
    }

    /**
     * Weights to train: the --init checkpoint's, else the teacher's (§5.4: the student starts as the teacher), else
     * the §3.6 initialization (also the shell a resume fills).
     */
    private static ModelWeights startingWeights(TrainOptions o, ModelConfig c, Backend be, TrainState.Header resumed,
                                                StartingWeights.Source teacher) throws IOException {
        if (resumed == null && o.init() != null) {
            return StartingWeights.studentFrom(new StartingWeights.Source(Path.of(o.init()), "", c), c, be, o.seed());
        }
        if (resumed == null && teacher != null) {
            return StartingWeights.studentFrom(teacher, c, be, o.seed());
        }
        return ModelInitializer.initialize(c, be, o.seed());
    }
}
