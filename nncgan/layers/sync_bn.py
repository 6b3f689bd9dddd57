"""Batch normalization over the whole batch when it is split across MPI ranks, on any context.

NNabla's F.sync_batch_normalization needs the CUDA extension's communicator. This one is a
PythonFunction in NumPy whose statistics are all-reduced over the ranks: in forward the
per-channel sums (for the mean, then the centred sums of squares: a two-pass variance), in
backward the per-channel sums of dy and dy * x_hat, so each rank's input gradient is that of the
whole batch. The gradients of beta and gamma are this rank's own sums (the optimizer's all-reduce
averages them, like every other gradient). The running statistics move as F.batch_normalization
moves them: r = decay r + (1 - decay) batch, the variance unbiased (x N / (N - 1), N the global
count). One fused function, not a graph of NNabla's broadcasting functions: measured, that graph
made a cgan_mnist step at batch 32 take 2.5 times as long as F.batch_normalization's.
"""
import numpy as np
import nnabla as nn
from nnabla.function import PythonFunction


class SyncBatchNormalization(PythonFunction):
    """y = gamma (x - mean) / sqrt(var + eps) + beta with the mean and variance of all ranks' batches.
    Inputs: x, beta, gamma, running mean, running var (updated in place by each forward)."""

    def __init__(self, comm, axes, decay_rate, eps, ctx=None):
        super().__init__(ctx or nn.get_current_context())
        self.comm, self.axes, self.decay, self.eps = comm, list(axes), decay_rate, eps

    @property
    def name(self):
        return "SyncBatchNormalization"

    def min_outputs(self):
        return 1

    def setup_impl(self, inputs, outputs):
        x = inputs[0]
        self.reduced = tuple(i for i in range(len(x.shape)) if i not in self.axes)
        self.n = int(np.prod([x.shape[i] for i in self.reduced])) * self.comm.size
        outputs[0].reset_shape(x.shape, True)

    def _sum(self, a):
        return a.sum(axis=self.reduced, keepdims=True, dtype=np.float64)

    def forward_impl(self, inputs, outputs):
        x = inputs[0].data.data
        gamma, beta = inputs[2].data.data, inputs[1].data.data
        mean = self.comm.sum(self._sum(x)) / self.n
        d = x - mean.astype(x.dtype)
        var = self.comm.sum(self._sum(d * d)) / self.n
        self.mean, self.rstd = mean.astype(x.dtype), (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        outputs[0].data.data[...] = d * (self.rstd * gamma.reshape(self.rstd.shape)) + beta.reshape(mean.shape)
        rm, rv = inputs[3].data.data, inputs[4].data.data
        rm[...] = self.decay * rm + (1 - self.decay) * mean.reshape(rm.shape)
        rv[...] = self.decay * rv + (1 - self.decay) * (var * self.n / max(self.n - 1, 1)).reshape(rv.shape)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        x, dy = inputs[0].data.data, outputs[0].grad.data
        gamma = inputs[2].data.data
        xhat = (x - self.mean) * self.rstd
        local = np.concatenate([self._sum(dy), self._sum(dy * xhat)])  # this rank's dbeta, dgamma
        grads = {1: local[:1], 2: local[1:]}
        if propagate_down[0]:
            g = self.comm.sum(local.copy()).astype(x.dtype)
            dx = (gamma.reshape(self.rstd.shape) * self.rstd / self.n) * (self.n * dy - g[:1] - xhat * g[1:])
            grads[0] = dx
        for i in (0, 1, 2):
            if propagate_down[i]:
                target = inputs[i].grad.data
                v = grads[i].reshape(target.shape)
                if accum[i]:
                    target += v
                else:
                    target[...] = v

    def grad_depends_output_data(self, i, o):
        return False

    def grad_depends_input_data(self, i, j):
        return True


def sync_batch_normalization(x, beta, gamma, mean, var, axes, decay_rate, eps, comm):
    """F.batch_normalization(batch_stat=True) over the batch of all `comm`'s ranks (equal parts)."""
    return SyncBatchNormalization(comm, axes, decay_rate, eps)(x, beta, gamma, mean, var)
