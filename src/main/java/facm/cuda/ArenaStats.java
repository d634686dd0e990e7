package facm.cuda;

/**
 * What a {@link DeviceArena} holds. reserved = inUse + cached (bytes obtained from the driver); peakInUse is the most
 * ever handed out at once since the last {@link DeviceArena#resetPeak()}.
 */
public record ArenaStats(long reservedBytes, long inUseBytes, long peakInUseBytes, long cachedBytes,
                         int blocksInUse, int blocksCached) {
    @Override
    public String toString() {
        return "in use " + DeviceArena.human(inUseBytes) + " in " + blocksInUse + " blocks, cached "
                + DeviceArena.human(cachedBytes) + " in " + blocksCached + " blocks, reserved " + DeviceArena.human(reservedBytes)
                + ", peak in use " + DeviceArena.human(peakInUseBytes);
    }
}
