"""Batch normalization (batch statistics) on the CPU, over one process' batch or the whole batch split
across MPI ranks.

NNabla's F.sync_batch_normalization needs the CUDA extension's communicator, and NNabla's CPU
F.batch_normalization runs far below what compiled loops reach (cgan_mnist's (64, 32, 14, 14),
CPU time, bench/kernel_ab.py: forward 2.76 ms against NumPy's 1.70, backward 4.89 against 2.00;
the numba loops here halve NumPy's forward and third its backward). This is one fused
PythonFunction whose per-channel statistics are summed over `comm`'s ranks (or this process only)
with one all-reduce each way: in forward the sums of x and of x squared, in backward the sums of
dy and dy * x_hat, so each rank's input gradient is that of the whole batch. The gradients of beta and gamma are this rank's own sums (the
optimizer's all-reduce averages them, like every other gradient). The running statistics move as
F.batch_normalization moves them: r = decay r + (1 - decay) batch, the variance unbiased
(x N / (N - 1), N the global count). Not a graph of NNabla's broadcasting functions: measured,
that graph made a cgan_mnist step at batch 32 take 2.5 times as long as F.batch_normalization's.

The arithmetic runs on a (P, C, S) view of x: C the kept axes (the maps), P and S the reduced
axes before and after them; per-channel sums are float64.
"""
import numpy as np
import nnabla as nn
import nnabla.functions as F
from nnabla.function import PythonFunction


_KERNELS = {}


def _k(name):
    """The compiled loop `name` (numba; compiled once per process, cached beside this module when it can be).
    Loops over a (P, C, S) array: per-channel float64 sums with two accumulators (no vectorising
    a strict floating-point sum), elementwise passes that LLVM vectorises."""
    if not _KERNELS:
        import numba

        def stats(x):
            p_, c_, s_ = x.shape
            out = np.zeros((2, c_), np.float64)
            for p in range(p_):
                for c in range(c_):
                    a0 = a1 = b0 = b1 = 0.0
                    s = 0
                    while s + 2 <= s_:
                        u, v = np.float64(x[p, c, s]), np.float64(x[p, c, s + 1])
                        a0 += u
                        a1 += v
                        b0 += u * u
                        b1 += v * v
                        s += 2
                    if s < s_:
                        u = np.float64(x[p, c, s])
                        a0 += u
                        b0 += u * u
                    out[0, c] += a0 + a1
                    out[1, c] += b0 + b1
            return out

        def normalize(x, mean, scale, beta, y):
            p_, c_, s_ = x.shape
            for p in range(p_):
                for c in range(c_):
                    m, k, b = mean[c], scale[c], beta[c]
                    for s in range(s_):
                        y[p, c, s] = (x[p, c, s] - m) * k + b

        def grad_sums(x, dy, mean, rstd):
            p_, c_, s_ = x.shape
            out = np.zeros((2, c_), np.float64)
            for p in range(p_):
                for c in range(c_):
                    m, r = mean[c], rstd[c]
                    a0 = a1 = b0 = b1 = 0.0
                    s = 0
                    while s + 2 <= s_:
                        d0, d1 = dy[p, c, s], dy[p, c, s + 1]
                        a0 += d0
                        a1 += d1
                        b0 += np.float64(d0 * ((x[p, c, s] - m) * r))
                        b1 += np.float64(d1 * ((x[p, c, s + 1] - m) * r))
                        s += 2
                    if s < s_:
                        d0 = dy[p, c, s]
                        a0 += d0
                        b0 += np.float64(d0 * ((x[p, c, s] - m) * r))
                    out[0, c] += a0 + a1
                    out[1, c] += b0 + b1
            return out

        def grad_x(x, dy, mean, rstd, g0, g1, k, dx, accum):
            p_, c_, s_ = x.shape
            for p in range(p_):
                for c in range(c_):
                    m, r, a, b, kk = mean[c], rstd[c], g0[c], g1[c], k[c]
                    for s in range(s_):
                        v = (dy[p, c, s] - (((x[p, c, s] - m) * r) * b + a)) * kk
                        if accum:
                            dx[p, c, s] += v
                        else:
                            dx[p, c, s] = v

        for f in (stats, normalize, grad_sums, grad_x):
            try:
                _KERNELS[f.__name__] = numba.njit(f, nogil=True, error_model="numpy", cache=True)
            except RuntimeError:  # no writable cache location: compile in memory
                _KERNELS[f.__name__] = numba.njit(f, nogil=True, error_model="numpy")
    return _KERNELS[name]


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

    def forward_impl(self, inputs, outputs):
        x = self._in(inputs[0].data.get_data("r"))
        c = self.pcs[1]
        beta, gamma = (inputs[i].data.get_data("r").reshape(c) for i in (1, 2))
        # Sum and sum of squares in one pass and one all-reduce (float64: no cancellation to fear at
        # these sizes): every reduction is a point where each rank waits for the slowest, and the
        # two-pass variance's second one cost more than its arithmetic (measured on 2 ranks).
        sums = self.comm.sum(_k("stats")(x)) / self.n
        mean, var = sums[0], np.maximum(sums[1] - sums[0] * sums[0], 0.0)
        self.mean, self.rstd = mean.astype(np.float32), (1.0 / np.sqrt(var + self.eps)).astype(np.float32)
        out = np.empty(self.pcs, np.float32) if self.moved else outputs[0].data.get_data("w").reshape(self.pcs)
        _k("normalize")(x, self.mean, self.rstd * gamma, beta, out)
        if self.moved:
            outputs[0].data.get_data("w")[...] = self._out(out, inputs[0].shape)
        rm, rv = inputs[3].data.get_data("rw"), inputs[4].data.get_data("rw")
        rm[...] = self.decay * rm + (1 - self.decay) * mean.reshape(rm.shape)
        rv[...] = self.decay * rv + (1 - self.decay) * (var * self.n / max(self.n - 1, 1)).reshape(rv.shape)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if not any(propagate_down[:3]):
            return
        x, dy = self._in(inputs[0].data.get_data("r")), self._in(outputs[0].grad.get_data("r"))
        local = _k("grad_sums")(x, dy, self.mean, self.rstd)   # this rank's dbeta, dgamma
        for i in (1, 2):
            if propagate_down[i]:
                g = inputs[i].grad.get_data("rw" if accum[i] else "w")
                v = local[i - 1].astype(np.float32).reshape(g.shape)
                if accum[i]:
                    g += v
                else:
                    g[...] = v
        if propagate_down[0]:
            # dx = gamma rstd (dy - mean(dy) - xhat mean(dy xhat)), the means over the whole batch,
            # written straight into x's gradient (or added to it) unless the axes were moved
            g = (self.comm.sum(local.copy()) / self.n).astype(np.float32)
            gamma = inputs[2].data.get_data("r").reshape(-1)
            if self.moved:
                dx = np.empty(self.pcs, np.float32)
                _k("grad_x")(x, dy, self.mean, self.rstd, g[0], g[1], gamma * self.rstd, dx, False)
                target = inputs[0].grad.get_data("rw" if accum[0] else "w")
                if accum[0]:
                    target += self._out(dx, inputs[0].shape)
                else:
                    target[...] = self._out(dx, inputs[0].shape)
            else:
                dx = inputs[0].grad.get_data("rw" if accum[0] else "w").reshape(self.pcs)
                _k("grad_x")(x, dy, self.mean, self.rstd, g[0], g[1], gamma * self.rstd, dx, bool(accum[0]))

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
