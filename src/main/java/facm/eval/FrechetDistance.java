package facm.eval;

import org.ejml.data.DMatrixRMaj;
import org.ejml.dense.row.CommonOps_DDRM;
import org.ejml.dense.row.factory.DecompositionFactory_DDRM;
import org.ejml.interfaces.decomposition.EigenDecomposition_F64;

/**
 * The Fréchet distance between two Gaussians fitted to feature vectors (the FID of Heusel et al. 2017):
 *
 * <pre>  d² = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2·(Σ₁^½ Σ₂ Σ₁^½)^½)</pre>
 *
 * In float64 throughout. The FID tools take sqrtm(Σ₁Σ₂) of a non-symmetric product and drop an imaginary part that
 * rounding leaves; the symmetric form used here has the same trace (Σ₁^½ Σ₂ Σ₁^½ is similar to Σ₁Σ₂) and needs only
 * symmetric eigendecompositions (EJML's symmetric QR algorithm), whose eigenvalues are real. Covariances are positive
 * semi-definite in exact arithmetic, so eigenvalues below the numerical-rank tolerance d·ε·max|λ| (numpy's
 * {@code matrix_rank} rule; ε = 2.2e-16) are set to 0, the slightly negative ones rounding leaves included. Without
 * that, a rank-deficient covariance (fewer samples than feature dimensions) would turn rounding noise of ~1e-16 in its
 * zero eigenvalues into √1e-16 = 1e-8 each in the trace of the square root.
 */
public final class FrechetDistance {
    private FrechetDistance() {
    }

    /** The terms of the distance, for reports: d² = meanTerm + traceTerm. */
    public record Parts(double meanTerm, double traceTerm) {
        public double value() {
            return meanTerm + traceTerm;
        }
    }

    public static double between(FeatureStatistics.Moments a, FeatureStatistics.Moments b) {
        return parts(a, b).value();
    }

    public static Parts parts(FeatureStatistics.Moments a, FeatureStatistics.Moments b) {
        int d = a.dim();
        if (b.dim() != d) {
            throw new IllegalArgumentException("FID of " + d + "-dimensional features against " + b.dim()
                    + "-dimensional ones");
        }
        double meanTerm = 0;
        for (int i = 0; i < d; i++) {
            double diff = a.mean()[i] - b.mean()[i];
            meanTerm += diff * diff;
        }
        DMatrixRMaj s1 = symmetric(a.covariance(), d, "first");
        DMatrixRMaj s2 = symmetric(b.covariance(), d, "second");
        DMatrixRMaj root1 = squareRoot(s1);
        DMatrixRMaj tmp = new DMatrixRMaj(d, d);
        DMatrixRMaj inner = new DMatrixRMaj(d, d);
        CommonOps_DDRM.mult(root1, s2, tmp);
        CommonOps_DDRM.mult(tmp, root1, inner);
        double traceSqrtInner = 0;
        for (double lambda : clamped(symmetricEigenvalues(inner))) {
            traceSqrtInner += Math.sqrt(lambda);
        }
        double traceTerm = CommonOps_DDRM.trace(s1) + CommonOps_DDRM.trace(s2) - 2 * traceSqrtInner;
        return new Parts(meanTerm, traceTerm);
    }

    private static DMatrixRMaj symmetric(double[] values, int d, String which) {
        for (double v : values) {
            if (!Double.isFinite(v)) {
                throw new IllegalArgumentException("the " + which + " covariance holds " + v);
            }
        }
        DMatrixRMaj m = new DMatrixRMaj(d, d, true, values);
        return symmetrized(m);
    }

    /** (M + Mᵀ)/2: removes the rounding asymmetry of a product before a symmetric solver sees it. */
    private static DMatrixRMaj symmetrized(DMatrixRMaj m) {
        int d = m.numRows;
        DMatrixRMaj s = new DMatrixRMaj(d, d);
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < d; j++) {
                s.unsafe_set(i, j, 0.5 * (m.unsafe_get(i, j) + m.unsafe_get(j, i)));
            }
        }
        return s;
    }

    /** V·diag(√max(λ, 0))·Vᵀ from the eigendecomposition of a symmetric matrix. */
    static DMatrixRMaj squareRoot(DMatrixRMaj symmetric) {
        int d = symmetric.numRows;
        EigenDecomposition_F64<DMatrixRMaj> eig = decompose(symmetric, true);
        double[] lambda = new double[eig.getNumberOfEigenvalues()];
        for (int k = 0; k < lambda.length; k++) {
            lambda[k] = eig.getEigenvalue(k).getReal();
        }
        lambda = clamped(lambda);
        DMatrixRMaj root = new DMatrixRMaj(d, d);
        for (int k = 0; k < lambda.length; k++) {
            double s = Math.sqrt(lambda[k]);
            if (s == 0) {
                continue;
            }
            DMatrixRMaj v = eig.getEigenVector(k);
            for (int i = 0; i < d; i++) {
                double vi = v.unsafe_get(i, 0) * s;
                for (int j = 0; j < d; j++) {
                    root.unsafe_set(i, j, root.unsafe_get(i, j) + vi * v.unsafe_get(j, 0));
                }
            }
        }
        return root;
    }

    /** Eigenvalues of a PSD matrix with those under the numerical-rank tolerance d·ε·max|λ| set to 0. */
    static double[] clamped(double[] lambda) {
        double max = 0;
        for (double l : lambda) {
            max = Math.max(max, Math.abs(l));
        }
        double tol = lambda.length * Math.ulp(1.0) * max;
        double[] out = new double[lambda.length];
        for (int k = 0; k < lambda.length; k++) {
            out[k] = lambda[k] < tol ? 0 : lambda[k];
        }
        return out;
    }

    static double[] symmetricEigenvalues(DMatrixRMaj m) {
        EigenDecomposition_F64<DMatrixRMaj> eig = decompose(symmetrized(m), false);
        double[] values = new double[eig.getNumberOfEigenvalues()];
        for (int k = 0; k < values.length; k++) {
            values[k] = eig.getEigenvalue(k).getReal();
        }
        return values;
    }

    private static EigenDecomposition_F64<DMatrixRMaj> decompose(DMatrixRMaj symmetric, boolean vectors) {
        int d = symmetric.numRows;
        EigenDecomposition_F64<DMatrixRMaj> eig = DecompositionFactory_DDRM.eig(d, vectors, true);
        if (!eig.decompose(symmetric.copy())) {
            throw new IllegalStateException("the symmetric eigendecomposition of a " + d + "×" + d
                    + " covariance did not converge");
        }
        return eig;
    }
}
