"""Batch normalization (batch statistics) in NumPy, over one process' batch or the whole batch split
across MPI ranks.

NNabla's F.sync_batch_normalization needs the CUDA extension's communicator, and NNabla's CPU
F.batch_normalization runs far below what NumPy's vector loops reach (cgan_mnist's (64, 32, 14, 14),
CPU time, bench/kernel_ab.py: forward 2.76 ms against 1.70, backward 4.89 against 2.00). This is one fused PythonFunction whose per-channel statistics are summed over
`comm`'s ranks (or this process only): in forward the sums for the mean, then the centred sums of
squares (a two-pass variance), in backward the sums of dy and dy * x_hat, so each rank's input
gradient is that of the whole batch. The gradients of beta and gamma are this rank's own sums (the
optimizer's all-reduce averages them, like every other gradient). The running statistics move as
F.batch_normalization moves them: r = decay r + (1 - decay) batch, the variance unbiased
(x N / (N - 1), N the global count). Not a graph of NNabla's broadcasting functions: measured,
that graph made a cgan_mnist step at batch 32 take 2.5 times as long as F.batch_normalization's.

The arithmetic runs on a (P, C, S) view of x: C the kept axes (the maps), P and S the reduced
axes before and after them; per-channel sums are float32 sums along S, then float64 over P.
"""
import numpy as np
import nnabla as nn
import nnabla.functions as F
from nnabla.function import PythonFunction


class _Local:
    """The statistics of this process' batch alone."""
    size = 1

    @staticmethod
    def sum(a):
        return a


class SyncBatchNormalization(PythonFunction):
    """y = gamma (x - mean) / sqrt(var + eps) + beta with the mean and variance of all ranks' batches.
    Inputs: x, beta, gamma, running mean, running var (updated in place by each forward)."""

    def __init__(self, comm, axes, decay_rate, eps, ctx=None):
        super().__init__(ctx or nn.get_current_context())
        self.comm, self.axes, self.decay, self.eps = comm or _Local(), sorted(axes), decay_rate, eps

    @property
    def name(self):
        return "SyncBatchNormalization" if self.comm.size > 1 else "NumpyBatchNormalization"

    def min_outputs(self):
        return 1

    def setup_impl(self, inputs, outputs):
        x = inputs[0].shape
        a = self.axes
        # Kept axes moved together (a copy only when they are not already adjacent).
        rest = [i for i in range(len(x)) if i not in a]
        lead = [i for i in rest if i < a[0]]
        self.perm = lead + a + [i for i in rest if i > a[0]]
        self.moved = self.perm != list(range(len(x)))
        p, c = int(np.prod([x[i] for i in lead])), int(np.prod([x[i] for i in a]))
        self.pcs = (p, c, int(np.prod(x)) // max(p * c, 1))
        self.n = (p * self.pcs[2]) * self.comm.size
        outputs[0].reset_shape(x, True)

    def _in(self, a):
        """(P, C, S) view (or, kept axes not adjacent, copy) of an array shaped like x."""
        return (np.ascontiguousarray(a.transpose(self.perm)) if self.moved else a).reshape(self.pcs)

    def _out(self, a3, shape):
        if not self.moved:
            return a3.reshape(shape)
        return a3.reshape([shape[i] for i in self.perm]).transpose(np.argsort(self.perm))

    def _sums(self, a, b=None):
        """Per-channel sum of a (or of a * b) over P and S: float32 along S, float64 over P."""
        s = a.sum(axis=2) if b is None else np.einsum("pcs,pcs->pc", a, b)
        return s.sum(axis=0, dtype=np.float64)

    def forward_impl(self, inputs, outputs):
        x = self._in(inputs[0].data.get_data("r"))
        c = self.pcs[1]
        beta, gamma = (inputs[i].data.get_data("r").reshape(c) for i in (1, 2))
        mean = self.comm.sum(self._sums(x)) / self.n
        d = np.subtract(x, mean.astype(np.float32)[:, None]) if self.moved else \
            np.subtract(x, mean.astype(np.float32)[:, None], out=outputs[0].data.get_data("w").reshape(self.pcs))
        var = self.comm.sum(self._sums(d, d)) / self.n
        self.mean, self.rstd = mean.astype(np.float32), (1.0 / np.sqrt(var + self.eps)).astype(np.float32)
        np.multiply(d, (self.rstd * gamma)[:, None], out=d)
        np.add(d, beta[:, None], out=d)
        if self.moved:
            outputs[0].data.get_data("w")[...] = self._out(d, inputs[0].shape)
        rm, rv = inputs[3].data.get_data("rw"), inputs[4].data.get_data("rw")
        rm[...] = self.decay * rm + (1 - self.decay) * mean.reshape(rm.shape)
        rv[...] = self.decay * rv + (1 - self.decay) * (var * self.n / max(self.n - 1, 1)).reshape(rv.shape)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if not any(propagate_down[:3]):
            return
        x, dy = self._in(inputs[0].data.get_data("r")), self._in(outputs[0].grad.get_data("r"))
        xhat = np.subtract(x, self.mean[:, None])
        np.multiply(xhat, self.rstd[:, None], out=xhat)
        local = np.stack([self._sums(dy), self._sums(dy, xhat)])   # this rank's dbeta, dgamma
        for i in (1, 2):
            if propagate_down[i]:
                g = inputs[i].grad.get_data("rw" if accum[i] else "w")
                v = local[i - 1].astype(np.float32).reshape(g.shape)
                if accum[i]:
                    g += v
                else:
                    g[...] = v
        if propagate_down[0]:
            # dx = gamma rstd (dy - mean(dy) - xhat mean(dy xhat)), the means over the whole batch
            g = (self.comm.sum(local.copy()) / self.n).astype(np.float32)
            gamma = inputs[2].data.get_data("r").reshape(-1)
            np.multiply(xhat, g[1][:, None], out=xhat)
            np.add(xhat, g[0][:, None], out=xhat)
            np.subtract(dy, xhat, out=xhat)
            np.multiply(xhat, (gamma * self.rstd)[:, None], out=xhat)
            dx = self._out(xhat, inputs[0].shape)
            target = inputs[0].grad.get_data("rw" if accum[0] else "w")
            if accum[0]:
                target += dx
            else:
                target[...] = dx

    def grad_depends_output_data(self, i, o):
        return False

    def grad_depends_input_data(self, i, j):
        return j in (0, 2)   # x_hat needs x; dx needs gamma


def sync_batch_normalization(x, beta, gamma, mean, var, axes, decay_rate, eps, comm):
    """F.batch_normalization(batch_stat=True) over the batch of all `comm`'s ranks (equal parts)."""
    return SyncBatchNormalization(comm, axes, decay_rate, eps)(x, beta, gamma, mean, var)


def batch_normalization(x, beta, gamma, mean, var, axes, decay_rate, eps, batch_stat):
    """F.batch_normalization; with batch statistics on the CPU context (cpu_kernels.enabled()) this
    module's NumPy function, which computes the same thing faster."""
    from .cpu_kernels import enabled
    # One kept axis only: with several, NNabla's running statistics are not the per-channel moving
    # averages (measured), and the point here is to train what NNabla trains.
    if batch_stat and len(axes) == 1 and enabled() and x.size >= MIN_SIZE:
        return SyncBatchNormalization(None, axes, decay_rate, eps)(x, beta, gamma, mean, var)
    return F.batch_normalization(x, beta, gamma, mean, var, axes=axes, decay_rate=decay_rate, eps=eps,
                                 batch_stat=batch_stat)


# Below this many elements NNabla's function is as fast (the PythonFunction's call costs ~0.1 ms):
# measured (bench/kernel_ab.py, CPU time) 0.87 against 0.29 ms forward for (64, 512), 1.33 against
# 1.37 forward and 1.21 against 2.58 backward for (64, 64, 7, 7).
MIN_SIZE = 50_000
