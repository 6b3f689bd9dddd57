"""Batch normalization over the whole batch when it is split across MPI ranks, on any context.

NNabla's F.sync_batch_normalization needs the CUDA extension's communicator. This one is NNabla
functions around one PythonFunction, AllReduceSum (forward: the sum over the ranks of its input;
backward: the sum over the ranks of its gradient), applied to the per-channel sums: the mean and
the (biased) variance of the global batch normalize, and the gradients flowing back through those
sums are summed over the ranks as well, so each rank's input gradient is that of the whole batch.
The running statistics move as F.batch_normalization moves them: r = decay r + (1 - decay) batch,
the variance unbiased (x N / (N - 1), N the global count).
"""
import numpy as np
import nnabla as nn
import nnabla.functions as F
from nnabla.function import PythonFunction


class AllReduceSum(PythonFunction):
    """y = sum over the ranks of x; dx = sum over the ranks of dy. `then(y)` sees each forward result."""

    def __init__(self, comm, then=None, ctx=None):
        super().__init__(ctx or nn.get_current_context())
        self.comm, self.then = comm, then

    @property
    def name(self):
        return "AllReduceSum"

    def min_outputs(self):
        return 1

    def setup_impl(self, inputs, outputs):
        outputs[0].reset_shape(inputs[0].shape, True)

    def forward_impl(self, inputs, outputs):
        y = outputs[0].data.data
        y[...] = inputs[0].data.data
        self.comm.sum(y)
        if self.then is not None:
            self.then(y)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if not propagate_down[0]:
            return
        g = self.comm.sum(np.array(outputs[0].grad.data))
        dx = inputs[0].grad.data
        if accum[0]:
            dx += g
        else:
            dx[...] = g

    def grad_depends_output_data(self, i, o):
        return False

    def grad_depends_input_data(self, i, j):
        return False


def sync_batch_normalization(x, beta, gamma, mean, var, axes, decay_rate, eps, comm):
    """F.batch_normalization(batch_stat=True) over the batch of all `comm`'s ranks (equal parts)."""
    reduced = [i for i in range(x.ndim) if i not in axes]
    n = int(np.prod([x.shape[i] for i in reduced])) * comm.size  # samples per statistic, all ranks
    seen = {}

    def mean_seen(s):
        seen["mean"] = s / n

    def update_running(s):  # as NNabla's BN: the running variance is the unbiased one
        mean.d = decay_rate * mean.d + (1 - decay_rate) * seen["mean"]
        var.d = decay_rate * var.d + (1 - decay_rate) * (s / n) * (n / max(n - 1, 1))

    mu = AllReduceSum(comm, mean_seen)(F.sum(x, axis=reduced, keepdims=True)) * (1.0 / n)
    d = x - mu
    v = AllReduceSum(comm, update_running)(F.sum(d * d, axis=reduced, keepdims=True)) * (1.0 / n)
    return d * F.pow_scalar(v + eps, -0.5) * gamma + beta
