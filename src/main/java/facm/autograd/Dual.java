package facm.autograd;

import facm.tensor.Tensor;

/**
 * A dual value of a forward-mode pass: the primal tensor and its tangent (same shape). A null tangent means an
 * exactly zero tangent (e.g. the class embedding, or x when only τ has a tangent): ops skip it instead of
 * materializing zeros.
 */
public record Dual(Tensor primal, Tensor tangent) {
}
