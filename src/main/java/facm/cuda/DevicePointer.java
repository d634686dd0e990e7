package facm.cuda;

import jcuda.driver.CUdeviceptr;

/**
 * A {@link CUdeviceptr} whose raw address can be read: JCuda keeps it in a protected field, and FFM calls (cuBLASLt)
 * and kernel arguments need the number itself.
 */
final class DevicePointer extends CUdeviceptr {
    long address() {
        return getNativePointer() + getByteOffset();
    }

    /** A JCuda pointer object for a raw device address (JCuda adds the byte offset to a null base). */
    static CUdeviceptr of(long address) {
        return new CUdeviceptr().withByteOffset(address);
    }
}
