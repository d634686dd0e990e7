/**
 * Training data on the host: data sets, and batches drawn from them reproducibly.
 *
 * <p>{@link facm.data.Datasets#open} turns a {@code --data} argument into a {@link facm.data.Dataset}:
 * <ul>
 * <li>{@code fashion-mnist}: the Fashion-MNIST test split bundled in the jar (10 000 images, MIT licence, Zalando SE;
 * see THIRD-PARTY-NOTICES.md and {@code facm/data/fashion-mnist/LICENSE});
 * <li>a folder of MNIST-style IDX files: {@link facm.data.IdxDataset}, 1×32×32 in [-1, 1]
 * ({@code /usr/share/datasets/fashion-mnist} from Debian's dataset-fashion-mnist package holds the 60 000 training
 * images);
 * <li>a folder of latent shards (facm-spec.md §2.1): {@link facm.data.LatentShards}, normalized per channel with
 * {@code latents_stats.safetensors}; the official {@code latents_stats.pt} has to be converted with
 * {@code facm convert --in latents_stats.pt --out latents_stats.safetensors} first;
 * <li>class folders of PNG/JPEG: {@link facm.data.ImageFolder}, which needs java.desktop (javax.imageio) and so a full
 * JDK: the jlinked runtime of the GPU bundle omits that module, and image folders are refused there with a message.
 * </ul>
 *
 * <p>{@link facm.data.BatchLoader} shuffles every epoch with a permutation that is a pure function of (seed, epoch)
 * ({@link facm.data.EpochRandom}, counter-based Philox), drops the incomplete last batch, prefetches on a background
 * thread and reports its position, so that a run resumed from a checkpoint sees exactly the batches it would have
 * seen without the interruption. Errors about data are {@link facm.data.DataException}s with one-line messages that
 * name the file.
 */
package facm.data;
