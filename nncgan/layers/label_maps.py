"""Convolutions over label maps as a per-class table: the same function, a fraction of the work.

A conditional GAN in NNC style feeds its label to a (de)convolution as maps: OneHot -> Reshape
(C,1,1) -> Unpooling (C,H,W), concatenated with the features. Every such map is one of only C
images, so its part of the (de)convolution is one of only C results. Convolution is linear in its
input, so

    conv(concat(f, m_y), W) = conv(f, W_f) + conv(e_y, W_m) = conv(f, W_f) + onehot_y . T,
    T = conv(E, W_m)  (E: the C constant maps, one per class)

with W_f, W_m the slices of W for the feature and label channels. T is computed for C maps per
step instead of the batch's N, and the gradients reach W_m through T. The parameters, their
names and what is trained are unchanged; only float summation order differs (tests compare to
float tolerance). On graphs/cgan_mnist.yaml the label channels are 10 of 11 inputs of the first
discriminator convolution and 10 of 42 of the second.
"""
import contextlib

import numpy as np
import nnabla as nn
import nnabla.functions as F

from . import cpu_kernels

ENABLED = True


@contextlib.contextmanager
def disabled():
    """Build with the plain formulation (for the equivalence tests and the benchmark's 'before')."""
    global ENABLED
    old, ENABLED = ENABLED, False
    try:
        yield
    finally:
        ENABLED = old


def _label_map(v):
    """The one-hot variable (N, C) if `v` is OneHot -> Reshape (C,1,1..) -> Unpooling*, else None."""
    if v.need_grad:
        return None
    f = v.parent
    while f is not None and f.info.type_name in ("Unpooling", "NumpyUnpooling") and \
            not f.info.args.get("channel_last"):
        v = f.inputs[0]
        f = v.parent
    if f is None or f.info.type_name != "Reshape" or any(s != 1 for s in v.shape[2:]):
        return None
    onehot = f.inputs[0]
    g = onehot.parent
    if g is None or g.info.type_name != "OneHot" or onehot.ndim != 2 or v.shape[1] != onehot.shape[1]:
        return None
    return onehot


def build(fn, x, W, b, in_axis, **geometry):
    """`fn(x, W, b, **geometry)` (F.convolution or F.deconvolution, base_axis 1), with every label
    map among the channels of a concatenated `x` computed as a table. `in_axis` is W's input-maps
    axis (1 for convolution, 0 for deconvolution)."""
    plain = lambda: fn(x, W, b, base_axis=1, **geometry)  # noqa: E731
    f = x.parent
    if (not ENABLED or geometry.get("group", 1) != 1 or f is None or f.info.type_name != "Concatenate"
            or f.info.args["axis"] != 1):
        return plain()
    parts, start = [], 0
    for v in f.inputs:
        parts.append((v, _label_map(v), start, start + v.shape[1]))
        start += v.shape[1]
    features = [(v, a, e) for v, onehot, a, e in parts if onehot is None]
    labels = [(onehot, a, e) for v, onehot, a, e in parts if onehot is not None]
    if not labels or not features:
        return plain()

    def w_slice(a, e):
        lo, hi = [0] * W.ndim, list(W.shape)
        lo[in_axis], hi[in_axis] = a, e
        return cpu_kernels.slice_(W, lo, hi)

    fx = features[0][0] if len(features) == 1 else F.concatenate(*[v for v, _, _ in features], axis=1)
    fw = w_slice(*features[0][1:]) if len(features) == 1 else F.concatenate(
        *[w_slice(a, e) for _, a, e in features], axis=in_axis)
    y = fn(fx, fw, b, base_axis=1, **geometry)
    spatial = x.shape[2:]
    for onehot, a, e in labels:
        classes = e - a
        eye = np.broadcast_to(np.eye(classes, dtype=np.float32).reshape((classes, classes) + (1,) * len(spatial)),
                              (classes, classes) + spatial)
        if cpu_kernels.enabled():
            table = cpu_kernels.label_table(fn, W, in_axis, (a, e), spatial, geometry)
        else:
            table = fn(nn.Variable.from_numpy_array(np.ascontiguousarray(eye)), w_slice(a, e), None,
                       base_axis=1, **geometry)                               # (C, out, H', W')
        y = cpu_kernels.add_rows(y, onehot, table)                            # each sample's row of T
    return y
