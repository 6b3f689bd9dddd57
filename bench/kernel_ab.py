"""Per-kernel A/B: nncgan's CPU kernels (layers/cpu_kernels.py, layers/sync_bn.py) against NNabla's own
functions on cgan_mnist's shapes (batch 64), forward and backward, interleaved in one process.

    .venv/bin/python bench/kernel_ab.py [--rounds 30] [--threads 1] [-k NAME]

Each round times one forward and one backward of every case with NNabla's function and with
nncgan's, alternating which goes first; prints the medians in ms. A benchmark, not a test.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import nnabla as nn
import nnabla.functions as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nncgan.layers import cpu_kernels as K, sync_bn  # noqa: E402


def _bn(fn):
    def build(x):
        p = [nn.Variable.from_numpy_array(a, need_grad=g) for a, g in (
            (np.zeros((1, x.shape[1]) + (1,) * (x.ndim - 2), np.float32), True),
            (np.ones((1, x.shape[1]) + (1,) * (x.ndim - 2), np.float32), True),
            (np.zeros((1, x.shape[1]) + (1,) * (x.ndim - 2), np.float32), False),
            (np.ones((1, x.shape[1]) + (1,) * (x.ndim - 2), np.float32), False))]
        return fn(x, *p, axes=[1], decay_rate=0.9, eps=0.01, batch_stat=True)
    return build


def _conv(fn, w_shape, **kw):
    def build(x):
        w = nn.Variable.from_numpy_array(np.random.RandomState(1).randn(*w_shape).astype(np.float32), need_grad=True)
        return fn(x, w, None, **kw)
    return build


def _affine(fn, w_shape):
    def build(x):
        w = nn.Variable.from_numpy_array(np.random.RandomState(1).randn(*w_shape).astype(np.float32), need_grad=True)
        return fn(x, w)
    return build


def _table(fn, kind, in_axis, channels, spatial):
    """label_maps' table of a layer's label channels from its whole W: NNabla's Slice and
    (de)convolution of the one-hot maps (as before), or cpu_kernels.label_table."""
    from step_ab import _nnabla_table
    geometry = dict(pad=(2, 2), stride=(2, 2), dilation=(1, 1), group=1)
    if fn == "nnabla":
        return lambda w: _nnabla_table(getattr(F, kind), w, in_axis, channels, spatial, geometry)
    return lambda w: K.label_table(getattr(K, kind), w, in_axis, channels, spatial, geometry)


def _rows(fast):
    def build(y):
        t = nn.Variable.from_numpy_array(np.random.RandomState(1).randn(10, *y.shape[1:]).astype(np.float32),
                                         need_grad=True)
        onehot = nn.Variable.from_numpy_array(np.eye(10, dtype=np.float32)[np.random.RandomState(2).randint(0, 10, 64)])
        if fast:
            return K.add_rows(y, onehot, t)
        return y + F.reshape(F.affine(onehot, F.reshape(t, (10, -1))), y.shape)
    return build


def _flag(name, value, build):
    """`build` with cpu_kernels.<name> set to value (a choice made when the layer is built)."""
    def built(x):
        old = getattr(K, name)
        setattr(K, name, value)
        try:
            return build(x)
        finally:
            setattr(K, name, old)
    return built


G2 = dict(pad=(2, 2), stride=(2, 2))
G1 = dict(pad=(1, 1), stride=(2, 2))
# name: (x shape, x needs a gradient, NNabla's, nncgan's)
CASES = {
    "bn (64,32,14,14)": ((64, 32, 14, 14), True, _bn(F.batch_normalization), _bn(sync_bn.batch_normalization)),
    "bn (64,64,7,7)": ((64, 64, 7, 7), True, _bn(F.batch_normalization), _bn(sync_bn.batch_normalization)),
    "bn (64,512)": ((64, 512), True, _bn(F.batch_normalization), _bn(sync_bn.batch_normalization)),
    "relu (64,32,14,14)": ((64, 32, 14, 14), True, F.relu, K.relu),
    "relu (64,512)": ((64, 512), True, F.relu, K.relu),
    "conv_4 (64,32,14,14)*(64,32,5,5)": ((64, 32, 14, 14), True, _conv(F.convolution, (64, 32, 5, 5), **G2),
                                         _conv(K.convolution, (64, 32, 5, 5), **G2)),
    "conv_3 (64,1,28,28)*(32,1,5,5)": ((64, 1, 28, 28), False, _conv(F.convolution, (32, 1, 5, 5), **G2),
                                       _conv(K.convolution, (32, 1, 5, 5), **G2)),
    "table conv_3 (10,10,28,28)*(32,10,5,5)": ((10, 10, 28, 28), False, _conv(F.convolution, (32, 10, 5, 5), **G2),
                                               _conv(K.convolution, (32, 10, 5, 5), **G2)),
    "table conv_4 (10,10,14,14)*(64,10,5,5)": ((10, 10, 14, 14), False, _conv(F.convolution, (64, 10, 5, 5), **G2),
                                               _conv(K.convolution, (64, 10, 5, 5), **G2)),
    "deconv (64,64,7,7)*(64,32,6,6)": ((64, 64, 7, 7), True, _conv(F.deconvolution, (64, 32, 6, 6), **G2),
                                       _conv(K.deconvolution, (64, 32, 6, 6), **G2)),
    "deconv_2 (64,32,14,14)*(32,1,6,6)": ((64, 32, 14, 14), True, _conv(F.deconvolution, (32, 1, 6, 6), **G2),
                                          _conv(K.deconvolution, (32, 1, 6, 6), **G2)),
    "deconv: col2im (left) vs phases (right)": ((64, 64, 7, 7), True,
                                              _flag("PHASES", False, _conv(K.deconvolution, (64, 32, 6, 6), **G2)),
                                              _conv(K.deconvolution, (64, 32, 6, 6), **G2)),
    "table deconv (10,10,7,7)*(10,32,6,6)": ((10, 10, 7, 7), False, _conv(F.deconvolution, (10, 32, 6, 6), **G2),
                                             _conv(K.deconvolution, (10, 32, 6, 6), **G2)),
    "table deconv_2 (10,10,14,14)*(10,1,6,6)": ((10, 10, 14, 14), False, _conv(F.deconvolution, (10, 1, 6, 6), **G2),
                                                _conv(K.deconvolution, (10, 1, 6, 6), **G2)),
    "affine_3 (64,3146)*(3146,512)": ((64, 3146), True, _affine(F.affine, (3146, 512)), _affine(K.affine, (3146, 512))),
    "affine_2 (64,522)*(522,3136)": ((64, 522), True, _affine(F.affine, (522, 3136)), _affine(K.affine, (522, 3136))),
    "table rows (64,10)*(10,6272)": ((64, 10), False, _affine(F.affine, (10, 6272)), _affine(K.affine, (10, 6272))),
    "label table of conv_3, W (32,11,5,5)": ((32, 11, 5, 5), True, _table("nnabla", "convolution", 1, (1, 11), (28, 28)),
                                             _table("blas", "convolution", 1, (1, 11), (28, 28))),
    "label table of deconv, W (74,32,6,6)": ((74, 32, 6, 6), True, _table("nnabla", "deconvolution", 0, (64, 74), (7, 7)),
                                             _table("blas", "deconvolution", 0, (64, 74), (7, 7))),
    "rows added (64,32,14,14)": ((64, 32, 14, 14), True, _rows(False), _rows(True)),
    "slice of W (64,42,5,5)": ((64, 42, 5, 5), True, lambda w: F.slice(w, [0, 0, 0, 0], [64, 32, 5, 5]),
                               lambda w: K.slice_(w, [0, 0, 0, 0], [64, 32, 5, 5])),
    "affine_4 (64,522)*(522,1)": ((64, 522), True, _affine(F.affine, (522, 1)), _affine(K.affine, (522, 1))),
}
# DCGAN at 28's generator convolutions (batch 32): im2col (left) against the taps' output side (right)
for x_shape, w_shape in (((32, 64, 32, 32), (1, 64, 7, 7)), ((32, 128, 16, 16), (64, 128, 3, 3)),
                         ((32, 256, 8, 8), (128, 256, 3, 3))):
    CASES[f"taps: im2col vs taps out {x_shape}*{w_shape}"] = (
        x_shape, True, _flag("TAPS_OUT", False, _conv(K.convolution, w_shape, pad=(1, 1))),
        _flag("TAPS_OUT", True, _conv(K.convolution, w_shape, pad=(1, 1))))

# the zoo's 3x3 convolutions at stride 1 (a process's batch): im2col or the taps' output side, as
# chosen without it (left), against Winograd's F(2x2, 3x3) (right)
for x_shape, w_shape in (((16, 256, 28, 28), (128, 256, 3, 3)), ((16, 64, 28, 28), (32, 64, 3, 3)),
                         ((16, 32, 28, 28), (32, 32, 3, 3)), ((32, 256, 8, 8), (128, 256, 3, 3)),
                         ((32, 128, 16, 16), (64, 128, 3, 3)), ((32, 64, 14, 14), (128, 64, 3, 3)),
                         ((32, 128, 7, 7), (256, 128, 3, 3)), ((16, 64, 28, 28), (128, 64, 3, 3))):
    CASES[f"winograd: without vs with {x_shape}*{w_shape}"] = (
        x_shape, True, _flag("WINOGRAD", False, _conv(K.convolution, w_shape, pad=(1, 1))),
        _flag("WINOGRAD", True, _conv(K.convolution, w_shape, pad=(1, 1))))

# CycleGAN's layers (batch 8 a process), each under MIN_FLOPS: NNabla's (left) against the kernels
for name, x_shape, w_shape, kw in (("C1", (8, 1, 28, 28), (16, 1, 5, 5), dict(pad=(2, 2))),
                                   ("C2", (8, 16, 28, 28), (32, 16, 4, 4), dict(pad=(1, 1), stride=(2, 2))),
                                   ("R", (8, 32, 14, 14), (32, 32, 3, 3), dict(pad=(1, 1))),
                                   ("Out", (8, 16, 28, 28), (1, 16, 5, 5), dict(pad=(2, 2))),
                                   ("P2", (8, 32, 14, 14), (64, 32, 4, 4), dict(pad=(1, 1), stride=(2, 2))),
                                   ("Score", (8, 64, 7, 7), (1, 64, 3, 3), dict(pad=(1, 1)))):
    CASES[f"cyclegan {name} {x_shape}*{w_shape}"] = (x_shape, True, _conv(F.convolution, w_shape, **kw),
                                                     _conv(K.convolution, w_shape, **kw))
CASES["cyclegan U1 (8,32,14,14)*(32,16,4,4)"] = ((8, 32, 14, 14), True, _conv(F.deconvolution, (32, 16, 4, 4), **G1),
                                                  _conv(K.deconvolution, (32, 16, 4, 4), **G1))

# DCGAN at 28 (batch 32 a process): its LeakyReLUs and Unpoolings
for shape in ((32, 64, 28, 28), (32, 128, 14, 14)):
    CASES[f"leaky_relu {shape}"] = (shape, True, lambda x: F.leaky_relu(x, 0.2), lambda x: K.leaky_relu(x, 0.2))
for shape in ((32, 256, 4, 4), (32, 128, 8, 8), (32, 64, 16, 16)):
    CASES[f"unpooling 2x2 {shape}"] = (shape, True, lambda x: F.unpooling(x, (2, 2)), lambda x: K.unpooling(x, (2, 2)))


def _case(shape, need_x, build):
    x = nn.Variable.from_numpy_array(np.random.RandomState(0).randn(*shape).astype(np.float32), need_grad=need_x)
    y = build(x)
    names = set()
    y.visit(lambda f: names.add(f.info.type_name))
    dy = np.random.RandomState(2).randn(*y.shape).astype(np.float32)

    def fwd():
        y.forward(clear_no_need_grad=True)

    def bwd():
        y.backward(dy, clear_buffer=False)
    return fwd, bwd, sorted(names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-k", default="", help="only the cases whose name contains this")
    ap.add_argument("--wall", action="store_true", help="wall time (default: this process' CPU time, "
                    "less disturbed by other jobs on a shared machine)")
    args = ap.parse_args()
    clock = time.perf_counter if args.wall else time.process_time
    K.set_blas_threads(args.threads)
    K.MIN_FLOPS = K.MIN_ELEMENTWISE = sync_bn.MIN_SIZE = 0   # every case on the kernels, whatever the thresholds
    print(f"{args.rounds} interleaved rounds, {args.threads} BLAS thread(s); median ms of "
          f"{'wall' if args.wall else 'CPU'} time")
    print(f"{'case':42s} {'NNabla fwd':>10s} {'ours fwd':>9s} {'NNabla bwd':>10s} {'ours bwd':>9s}  functions")
    for name, (shape, need_x, ref, fast) in CASES.items():
        if args.k not in name:
            continue
        runs = {"ref": _case(shape, need_x, ref), "fast": _case(shape, need_x, fast)}
        times = {(k, p): [] for k in runs for p in "fb"}
        for r in range(args.rounds + 2):
            for k in (("ref", "fast") if r % 2 else ("fast", "ref")):
                for p, fn in zip("fb", runs[k][:2]):
                    t0 = clock()
                    fn()
                    if r >= 2:
                        times[(k, p)].append(clock() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"{name:42s} {med[('ref', 'f')]:10.2f} {med[('fast', 'f')]:9.2f} {med[('ref', 'b')]:10.2f} "
              f"{med[('fast', 'b')]:9.2f}  {','.join(runs['fast'][2])}", flush=True)


if __name__ == "__main__":
    main()
