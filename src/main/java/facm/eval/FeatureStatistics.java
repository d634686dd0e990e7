package facm.eval;

/**
 * Streaming mean and covariance of feature vectors in float64, batch by batch, with the pairwise update of Chan, Golub
 * and LeVeque: each batch's mean and centred scatter matrix are computed on their own and merged as
 * M2 = M2ₐ + M2_b + δδᵀ·nₐn_b/(nₐ+n_b), δ = mean_b − meanₐ. Nothing is summed around zero as raw second moments, so
 * features with a large common offset lose no precision, and the result does not depend on how rows are batched
 * (beyond rounding). The covariance is the unbiased one (divided by n − 1), as numpy's {@code np.cov} gives the FID
 * tools.
 */
public final class FeatureStatistics {
    private final int dim;
    private long count;
    private final double[] mean;
    /** Scatter Σ (x − mean)(x − mean)ᵀ, row-major dim×dim; only the upper triangle (j ≥ i) is kept up to date. */
    private final double[] scatter;

    public FeatureStatistics(int dim) {
        if (dim < 1) {
            throw new IllegalArgumentException("feature dimension must be >= 1, got " + dim);
        }
        this.dim = dim;
        this.mean = new double[dim];
        this.scatter = new double[Math.multiplyExact(dim, dim)];
    }

    public int dim() {
        return dim;
    }

    public long count() {
        return count;
    }

    /** Adds {@code rows} feature vectors stored row-major in {@code features} ({@code rows·dim} values). */
    public void add(float[] features, int rows) {
        if ((long) rows * dim != features.length) {
            throw new IllegalArgumentException(rows + " rows of " + dim + " features need " + (long) rows * dim
                    + " values, got " + features.length);
        }
        if (rows == 0) {
            return;
        }
        for (float v : features) {
            if (!Float.isFinite(v)) {
                throw new IllegalArgumentException("a feature vector holds " + v + ": FID needs finite features");
            }
        }
        double[] batchMean = new double[dim];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < dim; i++) {
                batchMean[i] += features[r * dim + i];
            }
        }
        for (int i = 0; i < dim; i++) {
            batchMean[i] /= rows;
        }
        double[] batchScatter = new double[dim * dim];
        double[] centred = new double[dim];
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < dim; i++) {
                centred[i] = features[r * dim + i] - batchMean[i];
            }
            for (int i = 0; i < dim; i++) {
                double ci = centred[i];
                int row = i * dim;
                for (int j = i; j < dim; j++) {
                    batchScatter[row + j] += ci * centred[j];
                }
            }
        }
        merge(rows, batchMean, batchScatter);
    }

    private void merge(long nb, double[] meanB, double[] scatterB) {
        long na = count;
        long n = na + nb;
        double weight = (double) na * nb / n;
        double[] delta = new double[dim];
        for (int i = 0; i < dim; i++) {
            delta[i] = meanB[i] - mean[i];
        }
        for (int i = 0; i < dim; i++) {
            int row = i * dim;
            for (int j = i; j < dim; j++) {
                scatter[row + j] += scatterB[row + j] + delta[i] * delta[j] * weight;
            }
        }
        for (int i = 0; i < dim; i++) {
            mean[i] += delta[i] * nb / n;
        }
        count = n;
    }

    /** Mean and unbiased covariance of everything added so far (needs at least two vectors). */
    public Moments moments() {
        if (count < 2) {
            throw new IllegalStateException("a covariance needs at least 2 feature vectors, have " + count);
        }
        double[] cov = new double[dim * dim];
        for (int i = 0; i < dim; i++) {
            for (int j = i; j < dim; j++) {
                double v = scatter[i * dim + j] / (count - 1);
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        return new Moments(count, mean.clone(), cov);
    }

    /**
     * The first two moments of a feature distribution: {@code count} vectors, their mean {@code [dim]} and covariance
     * {@code [dim·dim]} row-major (symmetric).
     */
    public record Moments(long count, double[] mean, double[] covariance) {
        public Moments {
            if ((long) mean.length * mean.length != covariance.length) {
                throw new IllegalArgumentException("a mean of " + mean.length + " needs a " + mean.length + "×"
                        + mean.length + " covariance, got " + covariance.length + " values");
            }
        }

        public int dim() {
            return mean.length;
        }
    }
}
