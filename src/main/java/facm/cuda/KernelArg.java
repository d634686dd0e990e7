package facm.cuda;

/** Kernel parameter kinds. PTR is a device address (Long or DeviceBuffer); the others are scalars. */
public enum KernelArg {
    PTR, I32, I64, F32, F64
}
