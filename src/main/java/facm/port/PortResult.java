package facm.port;

/**
 * One row of the port check.
 *
 * @param label       row name, e.g. "attention.bwd bf16"
 * @param variant     code path name (see {@link Variant})
 * @param code        "SASS sm_90", "PTX compute_80 (JIT ...)" or "cuBLASLt" for library rows
 * @param status      PASS, FAIL or SKIP
 * @param maxRelError largest error over the correctness sizes (NaN when not compared)
 * @param tolerance   the row's bound
 * @param millis      median GPU time of one call at the benchmark size (NaN when not timed)
 * @param rate        achieved GB/s (bandwidth rows) or TFLOP/s (compute rows), NaN when not timed
 * @param unit        "GB/s" or "TFLOP/s"
 * @param fraction    rate over the card's copy bandwidth or bf16 GEMM rate (NaN when not timed)
 * @param note        why a row failed or was skipped, "" otherwise
 */
public record PortResult(String label, String variant, String code, Status status, double maxRelError,
                         double tolerance, double millis, double rate, String unit, double fraction, String note) {

    public enum Status { PASS, FAIL, SKIP }

    public boolean failed() {
        return status == Status.FAIL;
    }
}
