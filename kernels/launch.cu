// An empty kernel: launching it measures the fixed cost of one launch from Java (bench and health checks). It takes
// one (unused) argument because every real kernel has arguments, and packing them is part of a launch's cost.
extern "C" __global__ void noop(int unused) { (void)unused; }
