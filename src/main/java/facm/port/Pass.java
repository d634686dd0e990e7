package facm.port;

/** Which direction of an op a family case exercises. */
public enum Pass {
    FORWARD("fwd"), BACKWARD("bwd"), JVP("jvp");

    private final String label;

    Pass(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }
}
