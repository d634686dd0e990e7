package facm.eval;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** FID against closed forms, and the streaming moments against a two-pass computation. */
class FrechetDistanceTest {

    /** Σ = Q·diag(d)·Qᵀ for a random orthogonal Q (Gram–Schmidt of a Gaussian matrix). */
    private static double[] rotated(double[] diag, double[][] q) {
        int n = diag.length;
        double[] s = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                double v = 0;
                for (int k = 0; k < n; k++) {
                    v += q[i][k] * diag[k] * q[j][k];
                }
                s[i * n + j] = v;
            }
        }
        return s;
    }

    private static double[][] randomOrthogonal(int n, Random rng) {
        double[][] q = new double[n][n];
        for (int c = 0; c < n; c++) {
            double[] v = new double[n];
            for (int i = 0; i < n; i++) {
                v[i] = rng.nextGaussian();
            }
            for (int p = 0; p < c; p++) {
                double dot = 0;
                for (int i = 0; i < n; i++) {
                    dot += v[i] * q[i][p];
                }
                for (int i = 0; i < n; i++) {
                    v[i] -= dot * q[i][p];
                }
            }
            double norm = 0;
            for (double x : v) {
                norm += x * x;
            }
            norm = Math.sqrt(norm);
            for (int i = 0; i < n; i++) {
                q[i][c] = v[i] / norm;
            }
        }
        return q;
    }

    private static double[] diagonalMatrix(double[] d) {
        double[] m = new double[d.length * d.length];
        for (int i = 0; i < d.length; i++) {
            m[i * d.length + i] = d[i];
        }
        return m;
    }

    @Test
    void diagonalGaussiansMatchTheClosedForm() {
        Random rng = new Random(7);
        int n = 64;
        double[] mu1 = new double[n];
        double[] mu2 = new double[n];
        double[] d1 = new double[n];
        double[] d2 = new double[n];
        double expected = 0;
        for (int i = 0; i < n; i++) {
            mu1[i] = rng.nextGaussian() * 3;
            mu2[i] = rng.nextGaussian() * 3;
            d1[i] = 0.01 + rng.nextDouble() * 4;
            d2[i] = 0.01 + rng.nextDouble() * 4;
            // |μ₁−μ₂|² + Σ (σ₁ + σ₂ − 2√(σ₁σ₂)) = Σ Δμ² + Σ (√σ₁ − √σ₂)²
            expected += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i])
                    + (Math.sqrt(d1[i]) - Math.sqrt(d2[i])) * (Math.sqrt(d1[i]) - Math.sqrt(d2[i]));
        }
        double diag = FrechetDistance.between(new FeatureStatistics.Moments(100, mu1, diagonalMatrix(d1)),
                new FeatureStatistics.Moments(100, mu2, diagonalMatrix(d2)));
        assertEquals(expected, diag, 1e-9, "diagonal covariances");
        // the same pair in a rotated basis (commuting, non-diagonal covariances): FID is rotation invariant
        double[][] q = randomOrthogonal(n, rng);
        double rot = FrechetDistance.between(new FeatureStatistics.Moments(100, mu1, rotated(d1, q)),
                new FeatureStatistics.Moments(100, mu2, rotated(d2, q)));
        assertEquals(expected, rot, 1e-9, "rotated diagonal covariances");
    }

    @Test
    void nonCommutingTwoByTwoMatchesTheClosedForm() {
        // For 2×2 PSD matrices with A = Σ₁Σ₂: tr √A = √(tr A + 2√det A) (the eigenvalues of A are real, ≥ 0).
        double[] s1 = {2.0, 0.7, 0.7, 1.0};
        double[] s2 = {0.5, -0.3, -0.3, 3.0};
        double a00 = s1[0] * s2[0] + s1[1] * s2[2];
        double a11 = s1[2] * s2[1] + s1[3] * s2[3];
        double det = (s1[0] * s1[3] - s1[1] * s1[2]) * (s2[0] * s2[3] - s2[1] * s2[2]);
        double trSqrt = Math.sqrt(a00 + a11 + 2 * Math.sqrt(det));
        double[] mu1 = {1, -2};
        double[] mu2 = {0.5, 0.25};
        double expected = 0.25 + 2.25 * 2.25 + (s1[0] + s1[3]) + (s2[0] + s2[3]) - 2 * trSqrt;
        double fid = FrechetDistance.between(new FeatureStatistics.Moments(10, mu1, s1),
                new FeatureStatistics.Moments(10, mu2, s2));
        assertEquals(expected, fid, 1e-12);
    }

    @Test
    void identicalAndRankDeficientMoments() {
        Random rng = new Random(3);
        int dim = 40;
        FeatureStatistics few = new FeatureStatistics(dim);
        float[] rows = new float[10 * dim];
        for (int i = 0; i < rows.length; i++) {
            rows[i] = (float) rng.nextGaussian();
        }
        few.add(rows, 10); // 10 samples in 40 dimensions: covariance of rank 9
        FeatureStatistics.Moments m = few.moments();
        assertEquals(0, FrechetDistance.between(m, m), 1e-10, "FID of a rank-deficient distribution with itself");
        FeatureStatistics other = new FeatureStatistics(dim);
        for (int i = 0; i < rows.length; i++) {
            rows[i] = (float) (rng.nextGaussian() + 0.5);
        }
        other.add(rows, 10);
        double fid = FrechetDistance.between(m, other.moments());
        assertTrue(Double.isFinite(fid) && fid > 0, "rank-deficient covariances give a finite positive FID: " + fid);
        assertThrows(IllegalArgumentException.class, () -> FrechetDistance.between(m,
                new FeatureStatistics.Moments(2, new double[] {0, 0}, new double[] {1, 0, 0, 1})));
    }

    @Test
    void streamingMomentsMatchATwoPassComputationWhateverTheBatching() {
        Random rng = new Random(11);
        int dim = 17;
        int n = 1003;
        float[] x = new float[n * dim];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < dim; i++) {
                // a large common offset: raw second-moment sums would lose the variance to cancellation
                x[r * dim + i] = (float) (1e4 + i + rng.nextGaussian() * (1 + i % 3));
            }
        }
        double[] mean = new double[dim];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < dim; i++) {
                mean[i] += x[r * dim + i];
            }
        }
        for (int i = 0; i < dim; i++) {
            mean[i] /= n;
        }
        double[] cov = new double[dim * dim];
        for (int r = 0; r < n; r++) {
            for (int i = 0; i < dim; i++) {
                for (int j = 0; j < dim; j++) {
                    cov[i * dim + j] += (x[r * dim + i] - mean[i]) * (x[r * dim + j] - mean[j]) / (n - 1);
                }
            }
        }
        for (int batch : new int[] {1, 64, 500, n}) {
            FeatureStatistics s = new FeatureStatistics(dim);
            for (int start = 0; start < n; start += batch) {
                int b = Math.min(batch, n - start);
                s.add(java.util.Arrays.copyOfRange(x, start * dim, (start + b) * dim), b);
            }
            FeatureStatistics.Moments m = s.moments();
            assertEquals(n, m.count());
            assertArrayEquals(mean, m.mean(), 1e-9, "mean, batch " + batch);
            assertArrayEquals(cov, m.covariance(), 1e-9, "covariance, batch " + batch);
        }
    }

    @Test
    void badInputIsRefused() {
        FeatureStatistics s = new FeatureStatistics(3);
        assertThrows(IllegalArgumentException.class, () -> s.add(new float[5], 2));
        assertThrows(IllegalArgumentException.class, () -> s.add(new float[] {0, Float.NaN, 0}, 1));
        s.add(new float[] {1, 2, 3}, 1);
        assertThrows(IllegalStateException.class, s::moments, "one vector has no covariance");
    }
}
