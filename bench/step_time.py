"""Training-step time of graphs/cgan_mnist.yaml through nncgan against hand-written NNabla.

A benchmark, not a test: both contestants run the same four NNC networks (Generator,
DiscriminatorFake, DiscriminatorReal; the runtime network is not trained), the same three Adam
optimizers in the same order, batch 64, on the same minibatch, in one process, interleaved
iteration by iteration so that machine noise falls on both alike. The hand-written twin is
written the way NNabla's own examples write a DCGAN: one function per half under parameter
scopes, the fake image unlinked from the generator for the discriminator's step.

    .venv/bin/python bench/step_time.py [--iters 30] [--batch 64]

Prints the median seconds per iteration of each and their ratio (nncgan / hand-written).
"""
import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.initializer as I
import nnabla.parametric_functions as PF
import nnabla.solvers as S

ROOT = Path(__file__).resolve().parents[1]
GLOROT = dict(decay_rate=0.9, eps=0.01)


def _affine(h, n, name, bias):
    std = I.calc_normal_std_glorot(int(np.prod(h.shape[1:])), int(np.prod(n)))
    with nn.parameter_scope(name):
        return PF.affine(h, n, with_bias=bias, w_init=I.NormalInitializer(std))


def _conv(h, maps, name, deconv=False, bias=False):
    std = I.calc_normal_std_glorot(h.shape[1], maps, kernel=(6, 6) if deconv else (5, 5))
    with nn.parameter_scope(name):
        if deconv:
            return PF.deconvolution(h, maps, (6, 6), pad=(2, 2), stride=(2, 2), with_bias=bias,
                                    w_init=I.NormalInitializer(std))
        return PF.convolution(h, maps, (5, 5), pad=(2, 2), stride=(2, 2), with_bias=bias,
                              w_init=I.NormalInitializer(std))


def _bn_relu(h, name, batch_stat=True):
    with nn.parameter_scope(name):
        return F.relu(PF.batch_normalization(h, batch_stat=batch_stat, **GLOROT))


def generator(z, onehot):
    m7 = F.unpooling(F.reshape(onehot, (-1, 10, 1, 1)), (7, 7))
    m14 = F.unpooling(m7, (2, 2))
    with nn.parameter_scope("G"):
        h = _bn_relu(_affine(F.concatenate(z, onehot, axis=1), 512, "Affine", False), "BN")
        h = _bn_relu(_affine(F.concatenate(h, onehot, axis=1), (64, 7, 7), "Affine_2", False), "BN_2")
        h = _bn_relu(_conv(F.concatenate(m7, h, axis=1), 32, "Deconvolution", deconv=True), "BN_3")
        return F.sigmoid(_conv(F.concatenate(m14, h, axis=1), 1, "Deconvolution_2", deconv=True, bias=True))


def discriminator_logit(x, onehot):
    m14 = F.unpooling(F.reshape(onehot, (-1, 10, 1, 1)), (14, 14))
    m28 = F.unpooling(m14, (2, 2))
    with nn.parameter_scope("D"):
        h = _bn_relu(_conv(F.concatenate(x, m28, axis=1), 32, "Convolution_3"), "BN_6")
        h = _bn_relu(_conv(F.concatenate(h, m14, axis=1), 64, "Convolution_4"), "BN_4")
        h = F.concatenate(F.reshape(h, (-1, 3136)), onehot, axis=1)
        h = _bn_relu(_affine(h, 512, "Affine_3", False), "BN_5")
        return _affine(F.concatenate(h, onehot, axis=1), 1, "Affine_4", True)


class HandWritten:
    """The same three optimizer steps, written directly in NNabla."""

    def __init__(self, batch):
        self.z = nn.Variable((batch, 100))
        self.y = nn.Variable((batch, 1))
        self.x = nn.Variable((batch, 1, 28, 28))
        onehot = F.one_hot(self.y, (10,))
        fake = generator(self.z, onehot)
        self.loss_g = F.mean(F.sigmoid_cross_entropy(discriminator_logit(fake, onehot), F.constant(1, (batch, 1))))
        fake_d = fake.get_unlinked_variable(need_grad=False)
        self.loss_df = F.mean(F.sigmoid_cross_entropy(discriminator_logit(fake_d, onehot), F.constant(0, (batch, 1))))
        self.loss_dr = F.mean(F.sigmoid_cross_entropy(discriminator_logit(self.x, onehot), F.constant(1, (batch, 1))))
        self.fake = fake
        with nn.parameter_scope("G"):
            g = nn.get_parameters()
        with nn.parameter_scope("D"):
            d = nn.get_parameters()
        self.solvers = []
        for params in (g, d, d):
            s = S.Adam(0.0005, 0.5, 0.999, 1e-8)
            s.set_parameters(params)
            self.solvers.append(s)

    def step(self, batch, rng):
        self.x.d, self.y.d = batch["x"], batch["y"]
        for s, loss in zip(self.solvers, (self.loss_g, self.loss_df, self.loss_dr)):
            if loss is not self.loss_dr:
                self.z.d = rng.uniform(-1, 1, self.z.shape)
            s.zero_grad()
            if loss is self.loss_df:
                self.fake.forward(clear_no_need_grad=True)
            loss.forward(clear_no_need_grad=True)
            loss.backward(clear_buffer=True)
            s.update()


def nncgan_steps(batch_size, label_tables=True, kernels=True, comm=None):
    """nncgan's three optimizer steps; label_tables=False builds the plain formulation (before issue 7),
    kernels=False NNabla's own Affine/(De)Convolution (before issue 17); with an MPI `comm`, this rank's
    part of the global batch, gradients all-reduced (as `nncgan train` on several processes)."""
    import contextlib
    from nncgan.builder import build_all
    from nncgan.layers import cpu_kernels, label_maps
    from nncgan.graph.parse import parse_graph
    from nncgan.train.optimizer import OptimizerStep
    graph = parse_graph(ROOT / "graphs" / "cgan_mnist.yaml")
    with contextlib.nullcontext() if label_tables else label_maps.disabled(), \
            contextlib.nullcontext() if kernels else cpu_kernels.disabled():
        nets, _ = build_all(graph, batch_size, graph.config.seed, comm)
    return [OptimizerStep(o, nets[o.network], comm) for o in graph.optimizers]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    from nncgan import context
    context.select("cpu", log=lambda *a: None)
    steps = nncgan_steps(args.batch)           # parameters named as NNC names them ('Affine/affine/W')
    twin = HandWritten(args.batch)             # parameters under 'G/' and 'D/': no overlap
    rng = np.random.RandomState(0)
    data = np.random.RandomState(1)
    times = {"nncgan": [], "hand-written NNabla": []}
    for i in range(args.iters + 3):
        batch = {"x": data.rand(args.batch, 1, 28, 28).astype(np.float32),
                 "y": data.randint(0, 10, (args.batch, 1)).astype(np.float32)}
        order = (("nncgan", lambda: [s(batch, rng, i) for s in steps]), ("hand-written NNabla", lambda: twin.step(batch, rng)))
        for name, run in (order if i % 2 else order[::-1]):
            t0 = time.perf_counter()
            run()
            if i >= 3:  # the first iterations allocate memory
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, nnabla {nn.__version__}")
    print(f"batch {args.batch}, {args.iters} interleaved iterations (3 optimizer steps each), median:")
    for k, v in med.items():
        print(f"  {k:<22} {v * 1000:7.1f} ms/iteration  ({args.batch / v:6.1f} images/s)")
    print(f"  ratio nncgan / hand-written: {med['nncgan'] / med['hand-written NNabla']:.3f}")


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------- the machine's arithmetic limit

def flops_per_iteration(batch_size=64):
    """Floating-point operations of one training iteration of cgan_mnist in its (de)convolutions
    and affines, the GEMM work: 2 per multiply-add, forward plus the backward products that are
    computed (to an input that needs a gradient, to a weight that needs one). Read from the graph
    nncgan builds (label tables included), so it counts what nncgan computes."""
    from nncgan.layers import cpu_kernels
    from nncgan.builder import build_all
    from nncgan.graph.parse import parse_graph
    graph = parse_graph(ROOT / "graphs" / "cgan_mnist.yaml")
    with nn.parameter_scope("flops-count"), cpu_kernels.disabled():
        nets, _ = build_all(graph, batch_size, graph.config.seed)
    total = {"n": 0}

    def count(f):
        kind = f.info.type_name
        if kind not in ("Affine", "Convolution", "Deconvolution"):
            return
        x, w, y = f.inputs[0], f.inputs[1], f.outputs[0]
        if kind == "Affine":
            macs = y.size * w.shape[0]                 # (M, N) outputs, K each
        elif kind == "Convolution":
            macs = y.size * (w.size // w.shape[0])     # each output: C/g * k
        else:
            macs = x.size * (w.size // w.shape[0])     # each input: O/g * k
        total["n"] += 2 * macs * (1 + x.need_grad + w.need_grad)
    for o in graph.optimizers:
        nets[o.network].loss.visit(count)
    return total["n"]


def gemm_peak(threads=1, n=1024, repeats=5):
    """GFLOP/s of NumPy's float32 GEMM (OpenBLAS) on `threads` threads: the best of `repeats`
    (n x n) @ (n x n) products."""
    from nncgan.layers import cpu_kernels
    a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    out = np.empty((n, n), np.float32)
    limits = cpu_kernels.set_blas_threads(threads)
    try:
        np.matmul(a, b, out=out)
        best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    finally:
        if limits is not None:
            limits.restore_original_limits()
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
