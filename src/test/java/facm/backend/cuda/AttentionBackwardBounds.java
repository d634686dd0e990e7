package facm.backend.cuda;

/**
 * Per-element tolerances for the attention backward of the GPU against the CPU: {@code rel} times float64 magnitudes
 * of the terms each gradient sums (see CudaAttentionBackwardTest for the formulas). Host data layout: q, k, v
 * {@code [B,H,T,dh]}, out and gradOut token-major {@code [B,T,H·dh]}, lse {@code [B,H,T]}.
 */
final class AttentionBackwardBounds {
    private AttentionBackwardBounds() {
    }

    /** host = {q, k, v, out, lse, gradOut}; returns {tolQ, tolK, tolV}. */
    static float[][] tolerances(float[][] host, int b, int heads, int t, int dh, float scale, double rel) {
        float[] q = host[0], k = host[1], v = host[2], out = host[3], lse = host[4], go = host[5];
        int n = b * heads * t * dh;
        double[] mq = new double[n], mk = new double[n], mv = new double[n];
        double[] weight = new double[t];  // A_ij for one query row i
        double[] dsMag = new double[t];   // |dP_ij − D_i| + Σ|dO_i v_j| + Σ|dO_i O_i|
        for (int bh = 0; bh < b * heads; bh++) {
            int bi = bh / heads, h = bh % heads;
            int head = bh * t * dh;
            for (int i = 0; i < t; i++) {
                int tok = ((bi * t + i) * heads + h) * dh;
                double l = lse[bh * t + i], delta = 0, deltaMag = 0;
                for (int d = 0; d < dh; d++) {
                    delta += (double) go[tok + d] * out[tok + d];
                    deltaMag += Math.abs((double) go[tok + d] * out[tok + d]);
                }
                for (int j = 0; j < t; j++) {
                    double s = 0, sMag = 0, dp = 0, dpMag = 0;
                    for (int d = 0; d < dh; d++) {
                        double qk = (double) q[head + i * dh + d] * k[head + j * dh + d];
                        s += qk;
                        sMag += Math.abs(qk);
                        double dv = (double) go[tok + d] * v[head + j * dh + d];
                        dp += dv;
                        dpMag += Math.abs(dv);
                    }
                    double prob = Math.exp(s * scale - l);
                    weight[j] = prob * (2 + Math.abs(scale) * sMag + Math.abs(l));
                    dsMag[j] = Math.abs(dp - delta) + dpMag + deltaMag;
                }
                for (int j = 0; j < t; j++) {
                    double wq = Math.abs(scale) * weight[j] * dsMag[j];
                    for (int d = 0; d < dh; d++) {
                        mq[head + i * dh + d] += wq * Math.abs(k[head + j * dh + d]);
                        mk[head + j * dh + d] += wq * Math.abs(q[head + i * dh + d]);
                        mv[head + j * dh + d] += weight[j] * Math.abs(go[tok + d]);
                    }
                }
            }
        }
        float[][] tol = new float[3][n];
        for (int e = 0; e < n; e++) {
            tol[0][e] = (float) (rel * mq[e] + 1e-30);
            tol[1][e] = (float) (rel * mk[e] + 1e-30);
            tol[2][e] = (float) (rel * mv[e] + 1e-30);
        }
        return tol;
    }
}
