package facm.backend.cpu;

/**
 * The two patch permutations of {@link CpuNetworkOps} on raw arrays (shapes are checked there). Each permutation is a
 * bijection between an image {@code [B,C,H,W]} and tokens {@code [B, (H/p)(W/p), C·p·p]}, so its backward is the same
 * index map run the other way: one loop serves both directions, chosen by {@code toTokens}. Work is split over tokens,
 * each of which owns its slice of the token array and its p×p windows of the image.
 */
final class CpuPatches {
    private CpuPatches() {
    }

    /** Image dimensions and patch size. */
    record Grid(int batch, int channels, int height, int width, int patch) {
        int gridWidth() {
            return width / patch;
        }

        int tokens() {
            return (height / patch) * gridWidth();
        }

        int features() {
            return channels * patch * patch;
        }
    }

    /**
     * Patchify order (§3.2 step 1): token feature c·p² + pr·p + pc ↔ pixel (c, i·p+pr, j·p+pc). {@code toTokens}:
     * patchify (image → tokens); otherwise its backward (tokens → image).
     */
    static void convWeightOrder(ParallelRanges par, Grid g, float[] image, float[] tokens, boolean toTokens) {
        int p = g.patch(), c = g.channels(), h = g.height(), w = g.width();
        int gw = g.gridWidth(), count = g.tokens(), features = g.features(), p2 = p * p;
        par.forRange((long) g.batch() * count, CpuNetworkOps.grain(features), (s, e) -> {
            for (long n = s; n < e; n++) {
                int bi = (int) (n / count), tok = (int) (n % count);
                int row0 = (tok / gw) * p, col0 = (tok % gw) * p;
                int tokenBase = (int) n * features;
                for (int ch = 0; ch < c; ch++) {
                    for (int pr = 0; pr < p; pr++) {
                        int pixel = ((bi * c + ch) * h + row0 + pr) * w + col0;
                        int feature = tokenBase + ch * p2 + pr * p;
                        if (toTokens) {
                            System.arraycopy(image, pixel, tokens, feature, p);
                        } else {
                            System.arraycopy(tokens, feature, image, pixel, p);
                        }
                    }
                }
            }
        });
    }

    /**
     * Unpatchify order (§3.2 step 8): token feature (pr·p + pc)·C + c ↔ pixel (c, i·p+pr, j·p+pc). {@code toTokens}:
     * the backward of unpatchify (image gradient → token gradient); otherwise unpatchify (tokens → image).
     */
    static void channelLastOrder(ParallelRanges par, Grid g, float[] image, float[] tokens, boolean toTokens) {
        int p = g.patch(), c = g.channels(), h = g.height(), w = g.width();
        int gw = g.gridWidth(), count = g.tokens(), features = g.features(), plane = h * w;
        par.forRange((long) g.batch() * count, CpuNetworkOps.grain(features), (s, e) -> {
            for (long n = s; n < e; n++) {
                int bi = (int) (n / count), tok = (int) (n % count);
                int row0 = (tok / gw) * p, col0 = (tok % gw) * p;
                int tokenBase = (int) n * features;
                for (int pr = 0; pr < p; pr++) {
                    for (int pc = 0; pc < p; pc++) {
                        int feature = tokenBase + (pr * p + pc) * c;
                        int pixel = (bi * c * h + row0 + pr) * w + col0 + pc;
                        for (int ch = 0; ch < c; ch++) {
                            if (toTokens) {
                                tokens[feature + ch] = image[pixel + ch * plane];
                            } else {
                                image[pixel + ch * plane] = tokens[feature + ch];
                            }
                        }
                    }
                }
            }
        });
    }
}
