/**
 * cuBLASLt bindings: row-major, strided-batched GEMM in fp32, TF32 and bf16 (fp32 accumulation) on device memory.
 *
 * <p><b>Why hand-written FFM bindings</b> (design/platform.md §3): JCublas 12.6.0, the newest release, links against
 * {@code libcublas.so.12} and fails with UnsatisfiedLinkError on our CUDA 13 GPU hosts, and JCuda has no CUDA 13
 * release. The Foreign Function &amp; Memory API ({@code java.lang.foreign}, final since JDK 22) calls the C library
 * directly, with no JNI glue to build or ship, and lets us load whichever {@code libcublasLt.so.13} or {@code .so.12}
 * the host has. We bind only the dozen entry points we use ({@link facm.cuda.blas.CublasLtFunctions}); their numeric
 * enum values and struct layouts, with their sources, are in {@link facm.cuda.blas.CublasLtAbi}.
 *
 * <p>Entry points: {@link facm.cuda.blas.CublasLt} (the handle, {@code gemm}), {@link facm.cuda.blas.RowMajorGemm}
 * (one product's shape, strides and scalars), {@link facm.cuda.blas.GemmKind} (precisions).
 * Needs {@code --enable-native-access=ALL-UNNAMED} (or the jar manifest's {@code Enable-Native-Access}).
 */
package facm.cuda.blas;
