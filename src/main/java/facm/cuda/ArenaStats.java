package facm.cuda;

/**
 * What a {@link DeviceArena} holds. reserved = inUse + cached (bytes obtained from the driver); inUse counts blocks
 * handed out plus the free blocks of graph pools (a graph may write them on every replay), and poolBytes is the part
 * of inUse that belongs to open graph pools; peakInUse is the most ever in use at once since the last
 * {@link DeviceArena#resetPeak()}.
 */
public record ArenaStats(long reservedBytes, long inUseBytes, long peakInUseBytes, long cachedBytes,
                         int blocksInUse, int blocksCached, long poolBytes) {
    @Override
    public String toString() {
        return "in use " + DeviceArena.human(inUseBytes) + " in " + blocksInUse + " blocks"
                + (poolBytes > 0 ? " (" + DeviceArena.human(poolBytes) + " in graph pools)" : "")
                + ", cached " + DeviceArena.human(cachedBytes) + " in " + blocksCached + " blocks, reserved "
                + DeviceArena.human(reservedBytes) + ", peak in use " + DeviceArena.human(peakInUseBytes);
    }
}
