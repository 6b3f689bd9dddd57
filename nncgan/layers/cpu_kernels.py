"""Affine, Convolution and Deconvolution on the CPU as OpenBLAS GEMMs, inside NNabla's graph.

NNabla's own CPU kernels for these layers run well below what the same matrix products reach
through NumPy's OpenBLAS (issue 17: about 19 against 64 GFLOP/s for cgan_mnist's largest Affine).
Each function here is an `nnabla.function.PythonFunction`: the graph, its forward/backward,
need_grad, clear_buffer and the solvers stay NNabla's; only the arithmetic moves to BLAS.

Layout: a (de)convolution is one large GEMM per group, over the whole batch. The patches are laid
out as (C*k, P*N) ("im2col", one strided copy of an as_strided view of the input held as
(C, *S, N), batch innermost), so that forward, the weight gradient and the input gradient are each
a single GEMM; the adjoint ("col2im") adds the k shifted windows back, one strided add per kernel
offset. Deconvolution is the same pair of maps used the other way round. Everything is float32;
work arrays are shared by all kernels of the process (_Scratch).

Chosen at build time, when NNabla's default context is the CPU with float arrays and
NNCGAN_KERNELS is not "nnabla"; a layer whose settings are not covered here (channel_last, an
output_padding, base_axis other than 1 for a (de)convolution, a kernel of more than 3 axes), whose
shapes do not fit, or with under MIN_FLOPS of work keeps NNabla's function. The NNP exporter builds
with `disabled()`: a file holds NNabla's functions.

Several processes (MPI data parallelism): each has its own work arrays, nothing is shared between
processes; `set_blas_threads` sets the BLAS threads of the process (e.g. 1 per rank on 1 core each).
"""
import contextlib
import importlib.util
import itertools
import os
import sys
import types

import numpy as np
from scipy.linalg.blas import sgemm as _sgemm
import nnabla as nn
import nnabla.functions as F
from nnabla.function import PythonFunction


class _Alias(types.ModuleType):
    """Stands for module `target` under another name: attributes are the target's; no __path__, so
    nothing is ever imported through it (a package alias would load duplicate submodules)."""

    def __init__(self, name, target):
        super().__init__(name)
        self.__target = target

    def __getattr__(self, attr):
        if attr.startswith("__"):   # no __path__: `from nnabla import f` then takes C's path, not importlib's
            raise AttributeError(attr)
        return getattr(self.__target, attr)


def _stop_failed_relative_imports():
    """NNabla's Cython modules (built with Python 2 import semantics) run `import nnabla` and
    `import nnabla_ext.cpu` inside Variable.forward/backward and NdArray.get_data, and each such
    import first tries the relative names 'nnabla.nnabla' / 'nnabla.nnabla_ext.cpu', which do not
    exist: a failed import is not cached, so every try scanned sys.path (753 tries per cgan_mnist
    iteration, 0.05-0.2 ms each). A None entry in sys.modules made them fail without the scan, but
    still through importlib's Python code and a module lock each (40 per forward+backward of one
    batch normalization). Aliases of nnabla and nnabla_ext make those imports succeed in C, with
    what the absolute import binds (`import nnabla` binds nnabla, `import nnabla_ext.cpu` nnabla_ext)."""
    import nnabla_ext.cpu                 # NNabla's own dependency, imported by nnabla's context code
    for name, module in (("nnabla.nnabla", nn), ("nnabla.nnabla_ext", nnabla_ext)):
        if name not in sys.modules and importlib.util.find_spec(name) is None:   # no real module so named
            sys.modules[name] = _Alias(name, module)
    if isinstance(sys.modules.get("nnabla.nnabla_ext"), _Alias):
        sys.modules.setdefault("nnabla.nnabla_ext.cpu", _Alias("nnabla.nnabla_ext.cpu", nnabla_ext.cpu))


_stop_failed_relative_imports()

ENV = "NNCGAN_KERNELS"          # "nnabla": NNabla's own functions everywhere (comparisons, benchmark)
# Below this many multiply-adds x2 per forward, NNabla's own kernel was as fast or faster (the
# PythonFunction's call and the layout copies cost more than the GEMM gains): cgan_mnist's first
# convolution (20 MFLOP), last deconvolution (29) and label tables (31) against its big layers (>= 200).
MIN_FLOPS = 50e6
# ... unless the convolution reads, or the deconvolution writes, at least this many maps per group:
# NNabla's own is slow there whatever the size (CycleGAN at batch 8, forward + backward, CPU time,
# kernel_ab.py -k cyclegan: 32 -> 32 3x3 at 14x14 (29 MFLOP) 4.9 against 3.0 ms; 16 -> 1 5x5 at
# 28x28 (5 MFLOP) 7.7 against 2.1). Below it NNabla's wins: cgan_mnist's 1 -> 32 convolution
# (3.1 against 3.7 ms) and 32 -> 1 deconvolution (5.0 against 8.3), both at batch 64.
MIN_MAPS = 8
# Elementwise kernels: below this many elements the PythonFunction's call costs more than it saves
# (ReLU of (64, 512): 0.17 against NNabla's 0.09 ms forward, 0.19 against 0.21 backward; kernel_ab.py).
MIN_ELEMENTWISE = 50_000
# Deconvolution forward as one convolution per output phase where exact (_phase_plan); False: GEMM
# then col2im (the A/B of bench/kernel_ab.py).
PHASES = True
# Elements per piece of the transposing copies back to (N, C, ...) (_ConvKernel.from_csn); 0: one piece.
TRANSPOSE_CHUNK = 1 << 14
# Convolution input gradient: patch rows ordered (taps, C), so that col2im adds contiguous blocks.
TAPS_FIRST = True
# Convolution backward reads the forward's im2col when still there (BlasConvolution._cols).
REUSE_PATCHES = True
# Convolution of stride 1, one group, fewer output than input channels: the products on the output
# side of the taps (BlasConvolution._taps_out), no im2col. DCGAN's last layer (64 -> 1 channel,
# 7x7 at 28x28) otherwise copies and reads 49 x 64 rows of patches per image.
TAPS_OUT = True
# ... when what it copies, O x padded input, is at most this fraction of im2col's, C x output:
# (64 -> 1, 7x7, 28x28) 0.02, 8x faster; (128 -> 64, 3x3, 16x16) 0.63, 11% faster; (256 -> 128,
# 3x3, 8x8) 0.78, 15% slower (forward + backward at batch 32, interleaved; bench/kernel_ab.py -k taps).
TAPS_OUT_RATIO = 0.7
# Convolution of 3x3 taps, stride 1, one group, 2-D: Winograd's F(2x2, 3x3) (BlasConvolution._winograd):
# 16 GEMMs of (O, C) x (C, tiles) over 4x4 input tiles instead of one of (O, 9C): 2.25x fewer
# multiply-adds for the transforms' copies. Every 3x3 convolution of DCGAN, SRCNN's 256 -> 128 and
# the multi-stage GAN's stage 2 (bench/kernel_ab.py -k winograd).
WINOGRAD = True
# ... where it was measured faster: at least this many input and output maps, and tiles that cover the
# output with at most 10% to spare (kernel_ab.py: 256 -> 128 at 28x28 forward + backward 21% faster,
# 64 -> 128 at 14x14 12%; 64 -> 32 at 28x28 and 128 -> 256 at 7x7, 8x8 of tiles, slower).
WINOGRAD_MIN_MAPS = 64
WINOGRAD_SPARE = 1.1
# ... in pieces of whole tile rows, about this many elements of transformed input (16 C tiles N) each:
# the transforms' and the GEMMs' working set stays in cache and the work arrays small.
WINOGRAD_CHUNK = 1 << 18
_WG = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float32)   # U = G g G^T
_DISABLED = [False]


def enabled():
    """True when layers built now get the BLAS kernels: CPU float context, not switched off."""
    if _DISABLED[0] or os.environ.get(ENV, "blas").lower() == "nnabla":
        return False
    ctx = nn.get_current_context()
    return all(b == "cpu:float" for b in ctx.backend) and ctx.array_class in ("", "CpuArray", "CpuCachedArray")


@contextlib.contextmanager
def disabled():
    """Build with NNabla's own functions (NNP export, equivalence tests)."""
    old, _DISABLED[0] = _DISABLED[0], True
    try:
        yield
    finally:
        _DISABLED[0] = old


def set_blas_threads(n):
    """Limit NumPy's and SciPy's BLAS to `n` threads in this process (one per MPI rank, say).

    Uses threadpoolctl, which finds every OpenBLAS/MKL loaded (NumPy and SciPy each bring their
    own OpenBLAS). Returns the threadpool limiter, or None when threadpoolctl is missing; then
    only OPENBLAS_NUM_THREADS set before NumPy is imported has an effect."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        os.environ["OPENBLAS_NUM_THREADS"] = str(n)  # for child processes started from here
        return None
    return threadpool_limits(limits=int(n), user_api="blas")


def blas_threads():
    """{library path: threads} of the BLAS libraries loaded in this process (threadpoolctl), or {}."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


# ---------------------------------------------------------------- array access inside a PythonFunction

def _r(v):
    return v.data.get_data("r")


def _gw(v, accum):
    """The gradient array of input `v` to write (accum False) or to add into (accum True)."""
    return v.grad.get_data("rw" if accum else "w")


def _matmul(a, b, out, accum=False):
    """out = a @ b, or out += a @ b, in place (out C-contiguous). The sum goes through SciPy's
    sgemm with beta 1 (row-major as out.T = b.T a.T): 7.2 against 11.8 ms for matmul + add on
    (3146x64)@(64x512), measured interleaved; the plain product through np.matmul (equal speed)."""
    if not accum:
        np.matmul(a, b, out=out)
        return
    fa, fb = _fortran(b), _fortran(a)
    if fa is None or fb is None or not out.flags.c_contiguous:
        np.add(out, np.matmul(a, b), out=out)
        return
    _sgemm(1.0, fa[0], fb[0], 1.0, out.T, trans_a=fa[1], trans_b=fb[1], overwrite_c=1)


def _fortran(m):
    """(Fortran-ordered array, transpose flag) that BLAS reads as m.T, without a copy; None if none."""
    if m.flags.c_contiguous:
        return m.T, 0
    if m.flags.f_contiguous:
        return m, 1
    return None


def _store(dst, value, accum):
    if accum:
        np.add(dst, value, out=dst)
    else:
        np.copyto(dst, value)


class _Kernel(PythonFunction):
    def __init__(self, **args):
        super().__init__(None)
        self.args = args

    @property
    def name(self):
        return self.__class__.__name__

    def min_outputs(self):
        return 1

    def grad_depends_output_data(self, i, o):
        return False

    def grad_depends_input_data(self, i, j):
        # x's gradient needs W, W's needs x; the bias's needs neither.
        return (i, j) in ((0, 1), (1, 0))

    buffer = staticmethod(lambda key, shape, zero=False: _SCRATCH.get(key, shape, zero))


class _Scratch:
    """Work arrays shared by every kernel of this process, one flat float32 array per role, grown
    to the largest use: they hold nothing between calls, so memory is the largest layer's, not the
    sum over layers and networks (measured: +80 MB with per-function buffers on cgan_mnist). The
    graph runs one function at a time; each process (MPI rank) has its own."""
    KEEP_BYTES = 16 << 20  # larger work arrays (inference at a big batch) are made per call and freed
    ROLE = {"xp": "in", "dyp": "in", "cols": "cols", "wtmp": "wtmp", "wm": "wm", "wdm": "wdm", "wdu": "wdu", "yt": "out", "dxp": "out", "yp": "out", "dxt": "out",
            "dyt": "t", "xt": "t", "z": "cols", "gw": "out"}

    def __init__(self):
        self.flat, self.tag, self.owner = {}, {}, {}

    def claim(self, key, token):
        """Mark role(key)'s array as holding `token`'s data, until the next get() of that role."""
        if self.ROLE[key] in self.flat:
            self.owner[self.ROLE[key]] = token

    def holds(self, key, token):
        return token is not None and self.owner.get(self.ROLE[key]) is token

    def get(self, key, shape, zero=False, tag=None):
        """A (shape) view of role(key)'s array; zeroed when asked, or when `tag` differs from the
        tag of the role's previous use (a padded buffer's zero borders are then still zero)."""
        role, size = self.ROLE[key], int(np.prod(shape))
        self.owner.pop(role, None)
        if size * 4 > self.KEEP_BYTES:
            self.tag[role] = None
            return np.zeros(shape, np.float32) if zero or tag is not None else np.empty(shape, np.float32)
        flat = self.flat.get(role)
        if flat is None or flat.size < size:
            flat = self.flat[role] = np.zeros(size, np.float32)
            self.tag[role] = None
        view = flat[:size].reshape(shape)
        if zero or (tag is not None and self.tag[role] != tag):
            view.fill(0)
        self.tag[role] = tag
        return view


_SCRATCH = _Scratch()


# ---------------------------------------------------------------- Affine

class BlasAffine(_Kernel):
    """y = x W + b over the axes from base_axis on (NNabla's Affine)."""

    def setup_impl(self, inputs, outputs):
        x, w = inputs[0], inputs[1]
        ba = self.args["base_axis"]
        outputs[0].reset_shape(tuple(x.shape[:ba]) + tuple(w.shape[1:]), True)

    def _mats(self, inputs, outputs):
        ba = self.args["base_axis"]
        x = inputs[0]
        m = int(np.prod(x.shape[:ba]))
        k = inputs[1].shape[0]
        return m, k, inputs[1].size // k

    def forward_impl(self, inputs, outputs):
        m, k, n = self._mats(inputs, outputs)
        y = outputs[0].data.get_data("w").reshape(m, n)
        np.matmul(_r(inputs[0]).reshape(m, k), _r(inputs[1]).reshape(k, n), out=y)
        if len(inputs) > 2:
            np.add(y, _r(inputs[2]).reshape(1, n), out=y)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        m, k, n = self._mats(inputs, outputs)
        dy = outputs[0].grad.get_data("r").reshape(m, n)
        if propagate_down[0]:
            dx = _gw(inputs[0], accum[0]).reshape(m, k)
            w = _r(inputs[1]).reshape(k, n)
            _matmul(dy, w.T, dx, accum[0])
        if propagate_down[1]:
            dw = _gw(inputs[1], accum[1]).reshape(k, n)
            x = _r(inputs[0]).reshape(m, k)
            _matmul(x.T, dy, dw, accum[1])
        if len(inputs) > 2 and propagate_down[2]:
            _store(_gw(inputs[2], accum[2]).reshape(n), dy.sum(0), accum[2])


# ---------------------------------------------------------------- im2col / col2im, N-D, batch innermost
#
# The (de)convolutions work on arrays laid out (C, *S, N): batch innermost, so that every window
# copied or added by im2col/col2im is a run of N contiguous floats (NCHW would give runs of a row,
# 7 floats at stride 2 here: 7x slower, measured). One transposing copy in and out per call.

def _im2col(xp, k, dil, stride, out, cols):
    """cols (C*prod(k), prod(out)*N) <- the windows of the padded input xp (C, *S, N)."""
    c, n = xp.shape[0], xp.shape[-1]
    sc, ss, sn = xp.strides[0], xp.strides[1:-1], xp.strides[-1]
    view = np.lib.stride_tricks.as_strided(
        xp, (c,) + tuple(k) + tuple(out) + (n,),
        (sc,) + tuple(s * d for s, d in zip(ss, dil)) + tuple(s * t for s, t in zip(ss, stride)) + (sn,),
        writeable=False)
    np.copyto(cols.reshape(view.shape), view)
    return cols


def _col2im(cols, k, dil, stride, out, xp, taps_first=False):
    """xp (C, *S, N) += the adjoint of _im2col: every window added back where it was taken. Rows
    of cols ordered (C, *k), or (*k, C) with taps_first: each window's rows then one contiguous
    block (col2im of cgan_mnist's conv_4 gradient: 2.19 against 2.79 ms, measured interleaved)."""
    c, n = xp.shape[0], xp.shape[-1]
    v = cols.reshape((tuple(k) + (c,) if taps_first else (c,) + tuple(k)) + tuple(out) + (n,))
    for off in itertools.product(*[range(ki) for ki in k]):
        win = tuple(slice(o * d, o * d + t * (m - 1) + 1, t) for o, d, t, m in zip(off, dil, stride, out))
        dst = xp[(slice(None),) + win]
        np.add(dst, v[off] if taps_first else v[(slice(None),) + off], out=dst)


def _tap_windows(k, dil, out):
    """(tap offset, window of that tap over a padded stride-1 input) for every tap of kernel k."""
    for off in itertools.product(*[range(ki) for ki in k]):
        yield off, tuple(slice(o * d, o * d + m) for o, d, m in zip(off, dil, out))


def _bt(d, out, axis):
    """out[0..3] <- Winograd's B^T along `axis` of d: d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    t = lambda i: d[(slice(None),) * axis + (i,)]   # noqa: E731
    np.subtract(t(0), t(2), out=out[0])
    np.add(t(1), t(2), out=out[1])
    np.subtract(t(2), t(1), out=out[2])
    np.subtract(t(1), t(3), out=out[3])


def _b(dv, out):
    """out[0..3] <- B along the first axis of dv (the adjoint of _bt): v0, v1 - v2 + v3, v1 + v2 - v0, -v3."""
    np.copyto(out[0], dv[0])
    np.subtract(dv[1], dv[2], out=out[1])
    np.add(out[1], dv[3], out=out[1])
    np.add(dv[1], dv[2], out=out[2])
    np.subtract(out[2], dv[0], out=out[2])
    np.negative(dv[3], out=out[3])


def _a(d0, d1, out):
    """out[0..3] <- Winograd's A applied to a 2-vector (d0, d1): d0, d0 + d1, d0 - d1, -d1."""
    np.copyto(out[0], d0)
    np.add(d0, d1, out=out[1])
    np.subtract(d0, d1, out=out[2])
    np.negative(d1, out=out[3])


def _inner(a, pad):
    """The unpadded part of a (C, *S, N) array padded by `pad`."""
    return (slice(None),) + tuple(slice(p, s - p) for p, s in zip(pad, a.shape[1:-1])) + (slice(None),)


def _csn(a):
    """(N, C, *S) viewed as (C, *S, N)."""
    return np.moveaxis(a, 0, -1)


class _ConvKernel(_Kernel):
    def geometry(self):
        a = self.args
        return a["pad"], a["stride"], a["dilation"], a["group"]

    def to_csn(self, key, a, pad):
        """a (N, C, *S) copied into a kept buffer (C, *(S+2p), N) whose zero borders stay zero."""
        shape = (a.shape[1],) + tuple(s + 2 * p for s, p in zip(a.shape[2:], pad)) + (a.shape[0],)
        buf = _SCRATCH.get(key, shape, tag=(shape, tuple(pad)) if any(pad) else None)
        np.copyto(buf[_inner(buf, pad)], _csn(a))
        return buf

    def target(self, key, shape, pad):
        """A zeroed (C, *(S+2p), N) buffer for col2im to add into."""
        return self.buffer(key, (shape[1],) + tuple(s + 2 * p for s, p in zip(shape[2:], pad)) + (shape[0],),
                           zero=True)

    @staticmethod
    def from_csn(buf, pad, a, accum, bias=None):
        """a (N, C, *S) <- the unpadded part of buf (C, *S+2p, N), written or added, plus a bias.
        A transposing copy, done TRANSPOSE_CHUNK elements of buf at a time (whole channels), so
        that the block read stays in cache while it is scattered: cgan_mnist's conv_4 output,
        0.29 against 0.82 ms in one piece (measured interleaved)."""
        inner = buf[_inner(buf, pad)]
        step = max(1, TRANSPOSE_CHUNK // max(1, inner[0].size)) if TRANSPOSE_CHUNK else inner.shape[0]
        bias = None if bias is None else bias.reshape((1, -1) + (1,) * (a.ndim - 2))
        for c in range(0, inner.shape[0], step):
            src, dst = np.moveaxis(inner[c:c + step], -1, 0), a[:, c:c + step]
            if bias is not None and not accum:
                np.add(src, bias[:, c:c + step], out=dst)
                continue
            _store(dst, src, accum)
            if bias is not None:
                np.add(dst, bias[:, c:c + step], out=dst)

    @staticmethod
    def grouped_matmul(a, b, out, g, ta=False, tb=False, accum=False):
        """out[i] (+)= op(a[i]) @ op(b[i]) for each of the g row blocks (groups) of a, b and out."""
        ar, br, orow = a.shape[0] // g, b.shape[0] // g, out.shape[0] // g
        for i in range(g):
            ai, bi, oi = a[i * ar:(i + 1) * ar], b[i * br:(i + 1) * br], out[i * orow:(i + 1) * orow]
            ai, bi = ai.T if ta else ai, bi.T if tb else bi
            _matmul(ai, bi, oi, accum)


def _bias_grad(inputs, propagate_down, accum, dyt):
    if len(inputs) > 2 and propagate_down[2]:
        _store(_gw(inputs[2], accum[2]), dyt.reshape(dyt.shape[0], -1).sum(1), accum[2])


class BlasConvolution(_ConvKernel):
    """NNabla's Convolution (base_axis 1, channel first): W (O, C/g, *k)."""

    def out_shape(self, x_shape, w_shape):
        pad, stride, dil, _ = self.geometry()
        return tuple((s + 2 * p - d * (ki - 1) - 1) // t + 1
                     for s, p, d, ki, t in zip(x_shape[2:], pad, dil, w_shape[2:], stride))

    def setup_impl(self, inputs, outputs):
        x, w = inputs[0], inputs[1]
        outputs[0].reset_shape((x.shape[0], w.shape[0]) + self.out_shape(x.shape, w.shape), True)

    def _cols(self, x, k, out):
        """im2col of x; in backward, the forward's own patches when no kernel has used the
        work array since (the graph's backward meets the last convolution first: 1.4 ms saved for
        cgan_mnist's conv_4 per step, kernel_ab.py)."""
        pad, stride, dil, _ = self.geometry()
        shape = (x.shape[1] * int(np.prod(k)), int(np.prod(out)) * x.shape[0])
        if _SCRATCH.holds("cols", getattr(self, "_patches", None)):
            return self.buffer("cols", shape)
        xp = self.to_csn("xp", x, pad)
        return _im2col(xp, k, dil, stride, out, self.buffer("cols", shape))

    def _taps_out(self, x_shape, w_shape):
        """Products on the output side of the taps: Z (O, *k, *S+2p, N) = W (O*k, C) @ x (C, *S+2p, N),
        then y = the sum of each tap's window of Z, with nothing the size of C*k patches copied. Its
        GEMM has the FLOPs of im2col's at stride 1; what is copied is O*k rows instead of C*k."""
        pad, stride, _, g = self.geometry()
        if not (self.args["taps_out"] and g == 1 and all(t == 1 for t in stride)):
            return False
        p_in = np.prod([s + 2 * p for s, p in zip(x_shape[2:], pad)])
        p_out = np.prod(self.out_shape(x_shape, w_shape))
        return w_shape[0] * p_in <= TAPS_OUT_RATIO * x_shape[1] * p_out

    def _winograd(self, x_shape, w_shape):
        _, stride, dil, g = self.geometry()
        if not (self.args["winograd"] and tuple(w_shape[2:]) == (3, 3) and g == 1 and
                all(t == 1 for t in stride) and all(d == 1 for d in dil)):
            return False
        out = self.out_shape(x_shape, w_shape)
        tiled = np.prod([2 * -(-o // 2) for o in out])
        return min(w_shape[:2]) >= self.args["winograd_min_maps"] and tiled <= self.args["winograd_spare"] * np.prod(out)

    def _tiles_of(self, key, a, pad, out):
        """a (N, C, H, W) into a kept (C, 2th+2, 2tw+2, N) buffer at offset pad, zero elsewhere: the
        4x4 input tiles at stride 2 of th x tw output tiles of 2x2 (the last ones partly outside)."""
        t = [-(-o // 2) for o in out]
        shape = (a.shape[1], 2 * t[0] + 2, 2 * t[1] + 2, a.shape[0])
        buf = _SCRATCH.get(key, shape, tag=(shape, tuple(pad), a.shape[2:]))
        np.copyto(buf[:, pad[0]:pad[0] + a.shape[2], pad[1]:pad[1] + a.shape[3]], _csn(a))
        return buf

    @staticmethod
    def _u(w):
        """U (16, O, C) = G g G^T of W (O, C, 3, 3)."""
        u = np.tensordot(np.tensordot(_WG, w, ([1], [2])), _WG, ([3], [1]))    # (4, O, C, 4)
        return np.ascontiguousarray(np.moveaxis(u, 3, 1)).reshape(16, w.shape[0], w.shape[1])

    def _pieces_w(self, c, tiles, n):
        """[(first tile row, tile rows)] of about WINOGRAD_CHUNK transformed input elements each."""
        rows = max(1, WINOGRAD_CHUNK // (16 * c * tiles[1] * n))
        return [(r, min(rows, tiles[0] - r)) for r in range(0, tiles[0], rows)]

    def _transform_input(self, xp, t0, tr, tw):
        """V (4, 4, C, tr, tw, N) = B^T d B of the input tiles d of tile rows t0 .. t0+tr."""
        c, n = xp.shape[0], xp.shape[-1]
        sc, sh, sw, sn = xp.strides
        d = np.lib.stride_tricks.as_strided(xp[:, 2 * t0:], (c, tr, tw, 4, 4, n), (sc, 2 * sh, 2 * sw, sh, sw, sn),
                                            writeable=False)
        tmp, v = self.buffer("wtmp", (4, c, tr, tw, 4, n)), self.buffer("cols", (4, 4, c, tr, tw, n))
        _bt(d, tmp, 3)
        for a in range(4):
            _bt(tmp[a], v[a], 3)
        return v

    def _winograd_forward(self, x, w, y, bias):
        pad = self.geometry()[0]
        c, n, o, out = x.shape[1], x.shape[0], w.shape[0], y.shape[2:]
        xp = self._tiles_of("xp", x, pad, out)
        th, tw = (xp.shape[1] - 2) // 2, (xp.shape[2] - 2) // 2
        u = self._u(w)
        y6 = self.buffer("yt", (o, th, 2, tw, 2, n))
        for t0, tr in self._pieces_w(c, (th, tw), n):
            v = self._transform_input(xp, t0, tr, tw)
            m = self.buffer("wm", (4, 4, o, tr, tw, n))
            np.matmul(u, v.reshape(16, c, -1), out=m.reshape(16, o, -1))
            r = self.buffer("wtmp", (2, 4, o, tr, tw, n))      # A^T m A, first along the tile rows
            np.add(m[0], m[1], out=r[0])
            np.add(r[0], m[2], out=r[0])
            np.subtract(m[1], m[2], out=r[1])
            np.subtract(r[1], m[3], out=r[1])
            for a in range(2):
                o0, o1 = y6[:, t0:t0 + tr, a, :, 0], y6[:, t0:t0 + tr, a, :, 1]
                np.add(r[a, 0], r[a, 1], out=o0)
                np.add(o0, r[a, 2], out=o0)
                np.subtract(r[a, 1], r[a, 2], out=o1)
                np.subtract(o1, r[a, 3], out=o1)
        yt = y6.reshape(o, 2 * th, 2 * tw, n)[:, :out[0], :out[1]]
        self.from_csn(yt, (0, 0), y, False, bias)

    def _winograd_backward(self, inputs, dy, propagate_down, accum):
        """The adjoint of the forward: dM = A dy A^T per output tile; dU = dM V^T and dW = G^T dU G;
        dV = U^T dM and dx += B dV B^T of every input tile."""
        pad = self.geometry()[0]
        x_shape, w_shape = inputs[0].shape, inputs[1].shape
        c, n, o = x_shape[1], x_shape[0], w_shape[0]
        out = dy.shape[2:]
        th, tw = -(-out[0] // 2), -(-out[1] // 2)
        dyt = _SCRATCH.get("dyt", (o, 2 * th, 2 * tw, n), tag=("wino", out, n, o))
        np.copyto(dyt[:, :out[0], :out[1]], _csn(dy))
        _bias_grad(inputs, propagate_down, accum, dyt)
        need_w, need_x = propagate_down[1], propagate_down[0]
        if not (need_w or need_x):
            return
        xp = self._tiles_of("xp", _r(inputs[0]), pad, out) if need_w else None
        u = self._u(_r(inputs[1])) if need_x else None
        du = self.buffer("wdu", (16, o, c)) if need_w else None
        dxp = self.buffer("dxp", (c, 2 * th + 2, 2 * tw + 2, n), zero=True) if need_x else None
        d6 = dyt.reshape(o, th, 2, tw, 2, n)
        for i, (t0, tr) in enumerate(self._pieces_w(c, (th, tw), n)):
            dm, tmp = self.buffer("wdm", (4, 4, o, tr, tw, n)), self.buffer("wtmp", (4, 2, o, tr, tw, n))
            for b in range(2):          # A along the tile rows: d0, d0 + d1, d0 - d1, -d1; then the columns
                _a(d6[:, t0:t0 + tr, 0, :, b], d6[:, t0:t0 + tr, 1, :, b], tmp[:, b])
            for a in range(4):
                _a(tmp[a, 0], tmp[a, 1], dm[a])
            dm = dm.reshape(16, o, -1)
            if need_w:
                v = self._transform_input(xp, t0, tr, tw).reshape(16, c, -1)
                if i:
                    part = self.buffer("wtmp", (16, o, c))
                    np.matmul(dm, v.transpose(0, 2, 1), out=part)
                    np.add(du, part, out=du)
                else:
                    np.matmul(dm, v.transpose(0, 2, 1), out=du)
            if need_x:
                dv = self.buffer("cols", (4, 4, c, tr, tw, n))
                np.matmul(u.transpose(0, 2, 1), dm, out=dv.reshape(16, c, -1))
                t1, dd = self.buffer("wtmp", (4, 4, c, tr, tw, n)), self.buffer("wm", (4, 4, c, tr, tw, n))
                _b(dv, t1)
                for r in range(4):
                    _b(t1[r], dd[r])
                sc, sh, sw, sn = dxp.strides
                for h in (0, 2):        # the tiles overlap by 2: add them in 4 sets of disjoint 2x2 blocks
                    for v_ in (0, 2):
                        dst = np.lib.stride_tricks.as_strided(dxp[:, 2 * t0 + h:, v_:], (c, tr, tw, 2, 2, n),
                                                              (sc, 2 * sh, 2 * sw, sh, sw, sn))
                        np.add(dst, np.moveaxis(dd[h:h + 2, v_:v_ + 2], (0, 1), (3, 4)), out=dst)
        if need_w:
            dw = np.tensordot(np.tensordot(_WG, du.reshape(4, 4, o, c), ([0], [0])), _WG, ([1], [0]))  # (3, O, C, 3)
            _store(_gw(inputs[1], accum[1]), np.moveaxis(dw, 0, 2), accum[1])
        if need_x:
            h, w_ = x_shape[2] + 2 * pad[0], x_shape[3] + 2 * pad[1]
            self.from_csn(dxp[:, :h, :w_], pad, _gw(inputs[0], accum[0]), accum[0])

    def _rows(self, w):
        """W (O, C, *k) as rows (O, *k) x C: a small copy."""
        return np.ascontiguousarray(np.moveaxis(w, 1, -1)).reshape(-1, w.shape[1])

    def forward_impl(self, inputs, outputs):
        x, w = _r(inputs[0]), _r(inputs[1])
        y = outputs[0].data.get_data("w")
        g, o = self.geometry()[3], w.shape[0]
        self._patches = None
        if self._winograd(x.shape, w.shape):
            return self._winograd_forward(x, w, y, _r(inputs[2]) if len(inputs) > 2 else None)
        if self._taps_out(x.shape, w.shape):
            pad, _, dil, _ = self.geometry()
            xp = self.to_csn("xp", x, pad)
            z = self.buffer("z", (o,) + w.shape[2:] + xp.shape[1:])
            _matmul(self._rows(w), xp.reshape(xp.shape[0], -1), z.reshape(z.shape[0] * int(np.prod(w.shape[2:])), -1))
            yt = self.buffer("yt", (o,) + y.shape[2:] + (y.shape[0],))
            for i, (off, win) in enumerate(_tap_windows(w.shape[2:], dil, y.shape[2:])):
                src = z[(slice(None),) + off + win]
                if i:
                    np.add(yt, src, out=yt)
                else:
                    np.copyto(yt, src)
            self.from_csn(yt, (0,) * (y.ndim - 2), y, False, _r(inputs[2]) if len(inputs) > 2 else None)
            return
        cols = self._cols(x, w.shape[2:], y.shape[2:])
        yt = self.buffer("yt", (o,) + y.shape[2:] + (y.shape[0],))
        self.grouped_matmul(w.reshape(o, -1), cols, yt.reshape(o, -1), g)
        if self.args["reuse"]:
            self._patches = object()        # this forward's patches, until another kernel takes "cols"
            _SCRATCH.claim("cols", self._patches)
        self.from_csn(yt, (0,) * (y.ndim - 2), y, False, _r(inputs[2]) if len(inputs) > 2 else None)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        pad, stride, dil, g = self.geometry()
        w_shape = inputs[1].shape
        dy = outputs[0].grad.get_data("r")
        if self._winograd(inputs[0].shape, w_shape):
            return self._winograd_backward(inputs, dy, propagate_down, accum)
        o, k, out = w_shape[0], w_shape[2:], dy.shape[2:]
        dyt = self.to_csn("dyt", dy, (0,) * len(k)).reshape(o, -1)
        _bias_grad(inputs, propagate_down, accum, dyt)
        if self._taps_out(inputs[0].shape, w_shape):
            return self._taps_out_backward(inputs, propagate_down, accum, dyt.reshape((o,) + out + (-1,)))
        if propagate_down[1]:
            cols = self._cols(_r(inputs[0]), k, out)
            self.grouped_matmul(dyt, cols, _gw(inputs[1], accum[1]).reshape(o, -1), g, tb=True, accum=accum[1])
        if propagate_down[0]:
            x_shape = inputs[0].shape
            dcols = self.buffer("cols", (x_shape[1] * int(np.prod(k)), dyt.shape[1]))
            w = _r(inputs[1])
            taps_first = g == 1 and TAPS_FIRST
            if taps_first:   # rows of dcols ordered (*k, C): W (O, C, *k) as (O, *k, C), a small copy
                w = np.moveaxis(w, 1, -1)
            self.grouped_matmul(np.ascontiguousarray(w).reshape(o, -1), dyt, dcols, g, ta=True)
            dxp = self.target("dxp", x_shape, pad)
            _col2im(dcols, k, dil, stride, out, dxp, taps_first=taps_first)
            self.from_csn(dxp, pad, _gw(inputs[0], accum[0]), accum[0])

    def _taps_out_backward(self, inputs, propagate_down, accum, dyt):
        """dZ (O, *k, *S+2p, N): each tap's window holds dy, zero elsewhere; then dW (O*k, C) =
        dZ @ x^T and dx (C, *S+2p, N) = W^T @ dZ, one GEMM each, no col2im."""
        pad, _, dil, _ = self.geometry()
        w_shape, x_shape = inputs[1].shape, inputs[0].shape
        o, k = w_shape[0], w_shape[2:]
        sp = tuple(s + 2 * p for s, p in zip(x_shape[2:], pad))
        dz = self.buffer("z", (o,) + k + sp + (x_shape[0],), zero=True)
        for off, win in _tap_windows(k, dil, dyt.shape[1:-1]):
            np.copyto(dz[(slice(None),) + off + win], dyt)
        dz = dz.reshape(o * int(np.prod(k)), -1)
        if propagate_down[1]:
            xp = self.to_csn("xp", _r(inputs[0]), pad)
            gw = self.buffer("gw", (o * int(np.prod(k)), x_shape[1]))
            _matmul(dz, xp.reshape(xp.shape[0], -1).T, gw)
            gw = np.moveaxis(gw.reshape((o,) + k + (x_shape[1],)), -1, 1)   # (O, C, *k)
            _store(_gw(inputs[1], accum[1]), gw, accum[1])
        if propagate_down[0]:
            dxp = self.buffer("dxp", (x_shape[1],) + sp + (x_shape[0],))
            _matmul(self._rows(_r(inputs[1])).T, dz, dxp.reshape(x_shape[1], -1))
            self.from_csn(dxp, pad, _gw(inputs[0], accum[0]), accum[0])


class BlasDeconvolution(_ConvKernel):
    """NNabla's Deconvolution (base_axis 1, channel first, no output_padding): W (C, O/g, *k)."""

    def setup_impl(self, inputs, outputs):
        x, w = inputs[0], inputs[1]
        pad, stride, dil, g = self.geometry()
        out = tuple((s - 1) * t - 2 * p + d * (ki - 1) + 1
                    for s, p, d, ki, t in zip(x.shape[2:], pad, dil, w.shape[2:], stride))
        outputs[0].reset_shape((x.shape[0], w.shape[1] * g) + out, True)

    def forward_impl(self, inputs, outputs):
        pad, stride, dil, g = self.geometry()
        x, w = _r(inputs[0]), _r(inputs[1])
        y = outputs[0].data.get_data("w")
        c, k = x.shape[1], w.shape[2:]
        plan = _phase_plan(k, stride, pad, dil, x.shape[2:], y.shape[2:]) if g == 1 and self.args["phases"] else None
        if plan is not None:
            self.forward_phases(x, w, y, plan, _r(inputs[2]) if len(inputs) > 2 else None)
            return
        xt = self.to_csn("xt", x, (0,) * len(k)).reshape(c, -1)
        cols = self.buffer("cols", (y.shape[1] * int(np.prod(k)), xt.shape[1]))
        self.grouped_matmul(w.reshape(c, -1), xt, cols, g, ta=True)
        yp = self.target("yp", y.shape, pad)
        _col2im(cols, k, dil, stride, x.shape[2:], yp)
        self.from_csn(yp, pad, y, False, _r(inputs[2]) if len(inputs) > 2 else None)

    def forward_phases(self, x, w, y, plan, bias):
        """y as s^n stride-1 convolutions of x, one per output phase (see _phase_plan): one im2col
        of x with the E-wide windows and ONE GEMM (P*O, C*E) @ (C*E, Q*N), whose K is C*E instead
        of C, and no col2im (measured, cgan_mnist's deconvolution: see bench/kernel_ab.py)."""
        n, c, o = x.shape[0], x.shape[1], w.shape[1]
        taps, lo, hi, q = plan
        ext, nd = tuple(t.shape[1] for t in taps), len(taps)
        # Wp[r..., o, c, e...] = W[c, o, taps_a[r_a, e_a]...]
        grids = [t.reshape((1,) * a + (t.shape[0],) + (1,) * (nd - 1) + (t.shape[1],) + (1,) * (nd - 1 - a))
                 for a, t in enumerate(taps)]
        wp = w[(slice(None), slice(None)) + tuple(grids)]       # (C, O, s..., E...)
        wp = wp.transpose(tuple(range(2, 2 + nd)) + (1, 0) + tuple(range(2 + nd, 2 + 2 * nd)))
        shape = (c,) + tuple(s + a + b for s, a, b in zip(x.shape[2:], lo, hi)) + (n,)
        xp = _SCRATCH.get("xt", shape, tag=(shape, lo, hi) if any(lo) or any(hi) else None)
        np.copyto(xp[(slice(None),) + tuple(slice(a, a + s) for a, s in zip(lo, x.shape[2:])) + (slice(None),)],
                  _csn(x))
        cols = _im2col(xp, ext, (1,) * nd, (1,) * nd, q,
                       self.buffer("cols", (c * int(np.prod(ext)), int(np.prod(q)) * n)))
        phases = int(np.prod(self.args["stride"]))
        yt = self.buffer("yt", tuple(self.args["stride"]) + (o,) + tuple(q) + (n,))
        np.matmul(wp.reshape(phases * o, -1), cols, out=yt.reshape(phases * o, -1))
        # y[n, o, q*s + r] = yt[r, o, q, n]
        src = yt.transpose((2 * nd + 1, nd) + tuple(i for a in range(nd) for i in (nd + 1 + a, a)))
        dst = y.reshape(src.shape)
        bias = None if bias is None else bias.reshape((1, -1) + (1,) * (dst.ndim - 2))
        # in pieces of whole output maps, as in from_csn (cgan_mnist's deconvolution: 1.2 against 1.6 ms)
        step = max(1, TRANSPOSE_CHUNK // (yt.size // o)) if TRANSPOSE_CHUNK else o
        for i in range(0, o, step):
            if bias is None:
                np.copyto(dst[:, i:i + step], src[:, i:i + step])
            else:
                np.add(src[:, i:i + step], bias[:, i:i + step], out=dst[:, i:i + step])

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        pad, stride, dil, g = self.geometry()
        x_shape, w_shape = inputs[0].shape, inputs[1].shape
        dy = outputs[0].grad.get_data("r")
        c, k, o = x_shape[1], w_shape[2:], dy.shape[1]
        if len(inputs) > 2 and propagate_down[2]:
            _store(_gw(inputs[2], accum[2]), dy.sum(axis=(0,) + tuple(range(2, dy.ndim))), accum[2])
        if not (propagate_down[0] or propagate_down[1]):
            return
        dyp = self.to_csn("dyp", dy, pad)
        n_in = x_shape[0] * int(np.prod(x_shape[2:]))
        cols = _im2col(dyp, k, dil, stride, x_shape[2:], self.buffer("cols", (o * int(np.prod(k)), n_in)))
        if propagate_down[1]:
            xt = self.to_csn("xt", _r(inputs[0]), (0,) * len(k)).reshape(c, -1)
            self.grouped_matmul(xt, cols, _gw(inputs[1], accum[1]).reshape(c, -1), g, tb=True, accum=accum[1])
        if propagate_down[0]:
            dxt = self.buffer("dxt", (c,) + tuple(x_shape[2:]) + (x_shape[0],))
            self.grouped_matmul(_r(inputs[1]).reshape(c, -1), cols, dxt.reshape(c, -1), g)
            self.from_csn(dxt, (0,) * len(k), _gw(inputs[0], accum[0]), accum[0])


def _phase_plan(k, stride, pad, dil, s_in, s_out):
    """A deconvolution as one stride-1 convolution per output phase ("sub-pixel"): along an axis,
    output o = s q + r receives W's tap t from input i = q + e where s e = r + p - d t, so each
    phase r is a correlation of x with its own taps over the window e in [e_min, e_max]. Used when
    that costs no extra multiply-adds: every phase has all E = e_max - e_min + 1 taps (E s = k).
    Returns (taps per axis (s, E) arrays of W indices, pad before, pad after, Q outputs per phase),
    or None."""
    taps, lo, hi, q = [], [], [], []
    for k_a, s, p, d, n_in, n_out in zip(k, stride, pad, dil, s_in, s_out):
        found = {}
        for r in range(s):
            for t in range(k_a):
                if (r + p - d * t) % s == 0:
                    found[(r, (r + p - d * t) // s)] = t
        es = [e for _, e in found]
        e_min, e_max = min(es), max(es)
        width = e_max - e_min + 1
        if width * s != k_a or len(found) != k_a:
            return None
        qa = n_out // s
        if qa * s != n_out:      # not met when E s = k and d = 1: the output is (n_in + E - 1) s - 2 p
            return None
        taps.append(np.array([[found[(r, e)] for e in range(e_min, e_max + 1)] for r in range(s)]))
        # window of output q starts at input q + e_min: pad so that it starts at q in the padded array
        if e_min > 0:
            return None
        lo.append(-e_min)
        hi.append(max(0, qa - 1 + e_max - (n_in - 1)))
        q.append(qa)
    return taps, tuple(lo), tuple(hi), tuple(q)


# ---------------------------------------------------------------- label-map tables (layers/label_maps.py)
#
# label_maps computes a (de)convolution's label channels as a table T = fn(E, W_m) of the C constant
# one-hot maps E, then adds each sample's row of T. With NNabla's functions that is a Slice of W, a
# (de)convolution of C images, an Affine and an Add2 per layer, on tensors too small for BLAS to pay.
# Here: T from W directly, and the rows added in one function. Measured (CPU time, kernel_ab.py) for
# conv_3's table: 2.18 ms forward + 2.33 backward against 0.35 + 0.31; its rows: 2.66 + 1.64
# (Affine, Add2) against 0.98 + 1.01.

class BlasLabelTable(_Kernel):
    """T (C, O, *out) = fn(E, W[label channels]) for the C constant one-hot maps E, computed as
    T[c, o] = sum_k W_m[o, c, k] M[k] (deconvolution: W_m[c, o, k]): M[k, p] is 1 where kernel tap k
    of output pixel p falls on the image, which is the layer's own function applied once, at build
    time, to a map of ones with one output channel per tap. Input: the whole W; its gradient
    outside the label channels is left alone (accumulated) or zero (written)."""

    def setup_impl(self, inputs, outputs):
        outputs[0].reset_shape(self.args["shape"], True)

    def grad_depends_input_data(self, i, j):
        return False

    def _label(self, w):
        """W's label channels as (C, O, K)."""
        a, e = self.args["channels"]
        w = w.reshape(w.shape[:2] + (-1,))
        return w[a:e] if self.args["in_axis"] == 0 else w[:, a:e].transpose(1, 0, 2)

    def forward_impl(self, inputs, outputs):
        t = outputs[0].data.get_data("w")
        c, o = t.shape[:2]
        np.matmul(self._label(_r(inputs[0])), self.args["mask"], out=t.reshape(c, o, -1))

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if not propagate_down[0]:
            return
        dt = outputs[0].grad.get_data("r")
        dw = _gw(inputs[0], accum[0])
        if not accum[0]:
            dw.fill(0)
        g = self._label(dw)                     # a view into dW
        np.add(g, np.matmul(dt.reshape(dt.shape[:2] + (-1,)), self.args["mask"].T), out=g)


def label_table(fn, w, in_axis, channels, spatial, geometry):
    """fn(E, W sliced to `channels` along `in_axis`, None, base_axis=1, **geometry) for E the one-hot
    maps of those channels, shaped `spatial`: the table of layers/label_maps.py, from W in one
    function. `fn` is the layer's function (NNabla's or this module's), used once here for M."""
    taps = int(np.prod(w.shape[2:]))
    eye = np.eye(taps, dtype=np.float32).reshape((taps,) + tuple(w.shape[2:]))
    ident = (eye[:, None] if in_axis == 1 else eye[None]).copy()   # one output channel per tap
    with disabled():
        m = fn(nn.Variable.from_numpy_array(np.ones((1, 1) + tuple(spatial), np.float32)),
               nn.Variable.from_numpy_array(ident), None, base_axis=1, **geometry)
    m.forward()
    c, o = channels[1] - channels[0], w.shape[1 - in_axis]
    f = BlasLabelTable(mask=m.d.reshape(taps, -1).copy(), in_axis=in_axis, channels=tuple(channels),
                       shape=(c, o) + tuple(m.shape[2:]))
    return f(w)


class BlasAddRows(_Kernel):
    """y + reshape(onehot @ table): each sample's row of a label table added to its output."""

    def setup_impl(self, inputs, outputs):
        outputs[0].reset_shape(inputs[0].shape, True)

    def grad_depends_input_data(self, i, j):
        return (i, j) in ((1, 2), (2, 1))

    def forward_impl(self, inputs, outputs):
        y = _r(inputs[0])
        out = outputs[0].data.get_data("w").reshape(y.shape[0], -1)
        t = _r(inputs[2])
        np.matmul(_r(inputs[1]), t.reshape(t.shape[0], -1), out=out)
        np.add(out, y.reshape(out.shape), out=out)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        n = inputs[0].shape[0]
        dout = outputs[0].grad.get_data("r").reshape(n, -1)
        if propagate_down[0]:
            _store(_gw(inputs[0], accum[0]).reshape(dout.shape), dout, accum[0])
        c = inputs[2].shape[0]
        if propagate_down[1]:
            _matmul(dout, _r(inputs[2]).reshape(c, -1).T, _gw(inputs[1], accum[1]), accum[1])
        if propagate_down[2]:
            _matmul(_r(inputs[1]).T, dout, _gw(inputs[2], accum[2]).reshape(c, -1), accum[2])


def add_rows(y, onehot, table):
    """y + F.reshape(F.affine(onehot, F.reshape(table, (C, -1))), y.shape) in one function (enabled())."""
    if enabled() and onehot.ndim == 2 and table.shape[0] == onehot.shape[1] and \
            int(np.prod(table.shape[1:])) == int(np.prod(y.shape[1:])) and onehot.shape[0] == y.shape[0]:
        return BlasAddRows()(y, onehot, table)
    return y + F.reshape(F.affine(onehot, F.reshape(table, (table.shape[0], -1))), y.shape)


class NumpySlice(_Kernel):
    """x[start:stop] (step 1 on every axis): NNabla's CPU Slice of a (64, 42, 5, 5) weight took 0.94 ms
    forward and 1.13 backward, this 0.24 and 0.23 (CPU time, kernel_ab.py)."""

    def _index(self):
        return tuple(slice(a, e) for a, e in zip(self.args["start"], self.args["stop"]))

    def setup_impl(self, inputs, outputs):
        outputs[0].reset_shape(tuple(e - a for a, e in zip(self.args["start"], self.args["stop"])), True)

    def grad_depends_input_data(self, i, j):
        return False

    def forward_impl(self, inputs, outputs):
        np.copyto(outputs[0].data.get_data("w"), _r(inputs[0])[self._index()])

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if not propagate_down[0]:
            return
        dx = _gw(inputs[0], accum[0])
        if not accum[0]:
            dx.fill(0)
        g = dx[self._index()]
        np.add(g, outputs[0].grad.get_data("r"), out=g)


def slice_(x, start, stop):
    """F.slice(x, start, stop) with step 1, in NumPy (when enabled())."""
    start, stop = [int(a) for a in start], [int(e) for e in stop]
    if enabled() and len(start) == len(stop) == x.ndim and all(0 <= a < e <= n for a, e, n in zip(start, stop, x.shape)):
        return NumpySlice(start=start, stop=stop)(x)
    return F.slice(x, start, stop)


# ---------------------------------------------------------------- elementwise

class NumpyReLU(_Kernel):
    """max(x, 0). NNabla's CPU ReLU took 1.04 ms forward and 2.90 backward on cgan_mnist's
    (64, 32, 14, 14), this 0.57 and 0.87 (CPU time, bench/kernel_ab.py). The gradient reads the output (y > 0
    exactly where x > 0), so x itself need not be kept."""

    def setup_impl(self, inputs, outputs):
        outputs[0].reset_shape(inputs[0].shape, True)

    def grad_depends_output_data(self, i, o):
        return True

    def grad_depends_input_data(self, i, j):
        return False

    def forward_impl(self, inputs, outputs):
        np.maximum(_r(inputs[0]), 0, out=outputs[0].data.get_data("w"))

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if not propagate_down[0]:
            return
        dy, y = outputs[0].grad.get_data("r"), outputs[0].data.get_data("r")
        if accum[0]:
            dx = _gw(inputs[0], True)
            dx += dy * (y > 0)
        else:
            np.multiply(dy, y > 0, out=_gw(inputs[0], False))


class NumpyLeakyReLU(NumpyReLU):
    """max(x, alpha x) for 0 <= alpha <= 1. NNabla's CPU LeakyReLU took 10.7 ms forward on DCGAN's
    (32, 64, 28, 28) in a loaded profile of its step; the gradient, like NumpyReLU's, reads the
    output: y > 0 exactly where x > 0 (alpha >= 0)."""

    def forward_impl(self, inputs, outputs):
        x, y = _r(inputs[0]), outputs[0].data.get_data("w")
        np.multiply(x, np.float32(self.args["alpha"]), out=y)
        np.maximum(x, y, out=y)

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if not propagate_down[0]:
            return
        a = self.args["alpha"]
        dy, y = outputs[0].grad.get_data("r"), outputs[0].data.get_data("r")
        m = (y > 0).astype(np.float32)
        slope = np.subtract(np.float32(1), m)       # (1 - m) alpha + m: exactly 1 or alpha, as NNabla's
        slope *= np.float32(a)
        slope += m
        if accum[0]:
            dx = _gw(inputs[0], True)
            dx += dy * slope
        else:
            np.multiply(dy, slope, out=_gw(inputs[0], False))


class NumpyUnpooling(_Kernel):
    """Nearest-neighbour up-sampling over the last two axes by kernel (kh, kw), as F.unpooling: one
    broadcasting copy forward, kh x kw strided adds backward. NNabla's CPU Unpooling was about 11%
    of a DCGAN step (forward 71, backward 33 ms of about 900, loaded profile)."""

    def setup_impl(self, inputs, outputs):
        kh, kw = self.args["kernel"]
        x = inputs[0].shape
        outputs[0].reset_shape(x[:-2] + (x[-2] * kh, x[-1] * kw), True)

    def grad_depends_input_data(self, i, j):
        return False

    def _view(self, a, x_shape):
        """a (..., H kh, W kw) as (..., H, kh, W, kw)."""
        kh, kw = self.args["kernel"]
        return a.reshape(x_shape[:-2] + (x_shape[-2], kh, x_shape[-1], kw))

    def forward_impl(self, inputs, outputs):
        x = _r(inputs[0])
        np.copyto(self._view(outputs[0].data.get_data("w"), x.shape), x[..., :, None, :, None])

    def backward_impl(self, inputs, outputs, propagate_down, accum):
        if not propagate_down[0]:
            return
        shape = inputs[0].shape
        dy = self._view(outputs[0].grad.get_data("r"), shape)
        dx = _gw(inputs[0], accum[0])
        kh, kw = self.args["kernel"]
        for i, (a, b) in enumerate(itertools.product(range(kh), range(kw))):
            if i or accum[0]:
                np.add(dx, dy[..., a, :, b], out=dx)
            else:
                np.copyto(dx, dy[..., a, :, b])


# ---------------------------------------------------------------- drop-in replacements for F.*

def affine(x, weight, bias=None, base_axis=1):
    """F.affine with the BLAS kernel (when enabled(); NNabla's function otherwise)."""
    # Shapes that do not fit go to NNabla's function too, which refuses them in its own words.
    if (not enabled() or int(np.prod(x.shape[base_axis:])) != weight.shape[0]
            or (bias is not None and tuple(bias.shape) != tuple(weight.shape[1:]))
            or 2 * int(np.prod(x.shape)) * int(np.prod(weight.shape[1:])) < MIN_FLOPS):
        return F.affine(x, weight, bias, base_axis=base_axis)
    f = BlasAffine(base_axis=base_axis)
    return f(x, weight) if bias is None else f(x, weight, bias)


def _conv_ok(x, weight, bias, base_axis, pad, stride, dilation, group, extra, deconv=False):
    """Settings and shapes the kernels cover (others go to NNabla's function, which refuses a
    mismatch in its own words), and enough work to gain from them."""
    n = weight.ndim - 2
    if not (enabled() and base_axis == 1 and x.ndim == n + 2 and 1 <= n <= 3 and not extra and group >= 1
            and all(len(v) == n for v in (pad, stride, dilation))):
        return False
    if deconv:
        out = [(s - 1) * t - 2 * p + d * (k - 1) + 1 for s, p, d, k, t in
               zip(x.shape[2:], pad, dilation, weight.shape[2:], stride)]
        fits = x.shape[1] == weight.shape[0] and weight.shape[0] % group == 0
        maps = weight.shape[1] * group
    else:
        out = [(s + 2 * p - d * (k - 1) - 1) // t + 1 for s, p, d, k, t in
               zip(x.shape[2:], pad, dilation, weight.shape[2:], stride)]
        fits = x.shape[1] == weight.shape[1] * group and weight.shape[0] % group == 0
        maps = weight.shape[0]
    if not fits or min(out) < 1 or (bias is not None and tuple(bias.shape) != (maps,)):
        return False
    # one multiply-add per weight and input pixel (deconvolution), per weight and output pixel (convolution)
    pixels = x.shape[2:] if deconv else out
    # W's second axis: a convolution's input maps, a deconvolution's output maps (per group)
    return 2 * weight.size * x.shape[0] * int(np.prod(pixels)) >= MIN_FLOPS or weight.shape[1] >= MIN_MAPS


def _norm(v, n, default):
    return tuple(int(i) for i in v) if v is not None else (default,) * n


def convolution(x, weight, bias=None, base_axis=1, pad=None, stride=None, dilation=None, group=1, **extra):
    """F.convolution with the BLAS kernel where its settings are covered, NNabla's otherwise."""
    n = weight.ndim - 2
    p, s, d = _norm(pad, n, 0), _norm(stride, n, 1), _norm(dilation, n, 1)
    if not _conv_ok(x, weight, bias, base_axis, p, s, d, int(group), {k: v for k, v in extra.items() if v}):
        return F.convolution(x, weight, bias, base_axis, pad, stride, dilation, group, **extra)
    f = BlasConvolution(pad=p, stride=s, dilation=d, group=int(group), reuse=REUSE_PATCHES, taps_out=TAPS_OUT,
                          winograd=WINOGRAD, winograd_min_maps=WINOGRAD_MIN_MAPS,
                          winograd_spare=WINOGRAD_SPARE)
    return f(x, weight) if bias is None else f(x, weight, bias)


def deconvolution(x, weight, bias=None, base_axis=1, pad=None, stride=None, dilation=None, group=1, **extra):
    """F.deconvolution with the BLAS kernel where its settings are covered, NNabla's otherwise."""
    n = weight.ndim - 2
    p, s, d = _norm(pad, n, 0), _norm(stride, n, 1), _norm(dilation, n, 1)
    if not _conv_ok(x, weight, bias, base_axis, p, s, d, int(group), {k: v for k, v in extra.items() if v},
                    deconv=True):
        return F.deconvolution(x, weight, bias, base_axis, pad, stride, dilation, group, **extra)
    f = BlasDeconvolution(pad=p, stride=s, dilation=d, group=int(group), phases=PHASES)
    return f(x, weight) if bias is None else f(x, weight, bias)


def relu(x):
    """F.relu with NumPy's loop (when enabled())."""
    return NumpyReLU()(x) if enabled() and x.size >= MIN_ELEMENTWISE else F.relu(x)


def leaky_relu(x, alpha):
    """F.leaky_relu with NumPy's loops (when enabled() and 0 <= alpha <= 1)."""
    if enabled() and x.size >= MIN_ELEMENTWISE and 0.0 <= alpha <= 1.0:
        return NumpyLeakyReLU(alpha=float(alpha))(x)
    return F.leaky_relu(x, alpha)


def unpooling(x, kernel):
    """F.unpooling with NumPy's copies (when enabled(), a 2-D kernel and an input of MIN_ELEMENTWISE or
    more: a label map's unpooled one-hot (N, C, 1, 1) keeps NNabla's, which label_maps.py reads)."""
    kernel = tuple(int(k) for k in kernel)
    if enabled() and len(kernel) == 2 and x.ndim >= 2 and x.size >= MIN_ELEMENTWISE:
        return NumpyUnpooling(kernel=kernel)(x)
    return F.unpooling(x, kernel)
