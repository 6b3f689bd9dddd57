"""NNC's basic layers: inputs, affine/convolution, normalisation, activations, shape plumbing."""
import numpy as np
import nnabla.functions as F

from . import cpu_kernels, initializers as init, label_maps
from .base import LayerType, Setting, ShapeError, register, shape, int_, float_, bool_, choice, any_str

GENERATORS = ("Normal", "Uniform", "Constant")


def _prod(s):
    return int(np.prod(s))


@register
class Input(LayerType):
    type_name = "Input"
    is_input = True
    num_inputs = (0, 0)
    doc = "A batch of data from the dataset variable `dataset`, or drawn by `generator` (x multiplier)."
    settings = {
        "size": Setting(shape(), required=True, doc="shape of one sample, e.g. [1, 28, 28]"),
        "dataset": Setting(any_str, doc="dataset variable that feeds it (x, y, ...)"),
        "generator": Setting(choice(*GENERATORS), doc="Normal (std 1), Uniform [-1, 1] or Constant 1"),
        "multiplier": Setting(float_(), 1.0, doc="scales the generator's values"),
    }

    def out_shape(self, s, in_shapes):
        return s["size"]


def _affine_in_out(s, in_shapes):
    return _prod(in_shapes[0]), _prod(s["out_shape"])


@register
class Affine(LayerType):
    type_name = "Affine"
    params = ("W", "b")
    param_prefix = "affine"
    settings = {
        "out_shape": Setting(shape(), required=True),
        "with_bias": Setting(bool_, True),
        "w_init": Setting(init.parse, ("NormalAffineHeForward", 1.0)),
        "b_init": Setting(init.parse, ("Constant", 0.0)),
        "spectral_norm": Setting(bool_, False, doc="W / its largest singular value (nncgan.layers.palette)"),
    }

    def out_shape(self, s, in_shapes):
        return s["out_shape"]

    def param_used(self, s, pname):
        return pname == "W" or s["with_bias"]

    def param_shapes(self, s, in_shapes):
        shapes = {"W": (_prod(in_shapes[0]),) + s["out_shape"]}
        if s["with_bias"]:
            shapes["b"] = s["out_shape"]
        return shapes

    def initializer(self, s, pname, in_shapes):
        i, o = _affine_in_out(s, in_shapes)
        return init.make(s["w_init"] if pname == "W" else s["b_init"], i, o)

    def build(self, s, xs, ctx):
        return cpu_kernels.affine(xs[0], ctx.param("W"), ctx.param("b") if s["with_bias"] else None, base_axis=1)


def _conv_settings():
    return {
        "out_maps": Setting(int_(1), required=True),
        "kernel_shape": Setting(shape(), required=True),
        "border_mode": Setting(choice("valid", "same"), "valid",
                               doc="same: pad so that stride 1 keeps the size (NNC's BorderMode)"),
        "pad": Setting(shape(minimum=0)),
        "stride": Setting(shape()),
        "dilation": Setting(shape()),
        "group": Setting(int_(1), 1),
        "with_bias": Setting(bool_, True),
        "w_init": Setting(init.parse, ("NormalConvolutionHeForward", 1.0)),
        "b_init": Setting(init.parse, ("Constant", 0.0)),
        "spectral_norm": Setting(bool_, False, doc="W / its largest singular value (nncgan.layers.palette)"),
    }


class _ConvBase(LayerType):
    params = ("W", "b")
    settings = _conv_settings()

    def geometry(self, s, in_shape):
        """(kernel, pad, stride, dilation), each a tuple over the spatial axes; checks the ranks."""
        k = s["kernel_shape"]
        n = len(k)
        if len(in_shape) != n + 1:
            raise ShapeError(f"an input of {n + 1} axes (maps, {n} spatial) for a {n}-D kernel, "
                             f"got shape {in_shape}")
        d = s["dilation"] or (1,) * n
        if s["pad"] is not None:
            p = s["pad"]
        elif s["border_mode"] == "same":
            p = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d))
        else:
            p = (0,) * n
        st = s["stride"] or (1,) * n
        for name, v in (("pad", p), ("stride", st), ("dilation", d)):
            if len(v) != n:
                raise ShapeError(f"{name} of {n} values to match kernel_shape {k}, got {v}")
        if in_shape[0] % s["group"] or s["out_maps"] % s["group"]:
            raise ShapeError(f"input maps ({in_shape[0]}) and out_maps ({s['out_maps']}) "
                             f"divisible by group {s['group']}")
        return k, p, st, d

    def param_used(self, s, pname):
        return pname == "W" or s["with_bias"]

    def initializer(self, s, pname, in_shapes):
        if pname == "b":
            return init.make(s["b_init"], 1, 1)
        return init.make(s["w_init"], in_shapes[0][0] // s["group"], s["out_maps"], s["kernel_shape"])

    def out_shape(self, s, in_shapes):
        k, p, st, d = self.geometry(s, in_shapes[0])
        sp = tuple(self.spatial(i, ki, pi, si, di) for i, ki, pi, si, di in zip(in_shapes[0][1:], k, p, st, d))
        if min(sp) < 1:
            raise ShapeError(f"an output of at least one pixel; kernel {k}, pad {p}, stride {st} "
                             f"on input {in_shapes[0]} give {sp}")
        return (s["out_maps"],) + sp

    def param_shapes(self, s, in_shapes):
        shapes = {"W": self.w_shape(in_shapes[0][0], s["out_maps"], s["group"]) + s["kernel_shape"]}
        if s["with_bias"]:
            shapes["b"] = (s["out_maps"],)
        return shapes

    def build(self, s, xs, ctx):
        k, p, st, d = self.geometry(s, xs[0].shape[1:])
        fn = self.fast_fn if cpu_kernels.enabled() else self.fn  # BLAS on the CPU, NNabla's on CUDA
        return label_maps.build(fn, xs[0], ctx.param("W"), ctx.param("b") if s["with_bias"] else None,
                                self.in_axis, pad=p, stride=st, dilation=d, group=s["group"])


@register
class Convolution(_ConvBase):
    type_name = "Convolution"
    param_prefix = "conv"
    fn = staticmethod(F.convolution)
    fast_fn = staticmethod(cpu_kernels.convolution)
    in_axis = 1  # W is (out_maps, in_maps, ...)

    @staticmethod
    def spatial(i, k, p, s, d):
        return (i + 2 * p - d * (k - 1) - 1) // s + 1

    @staticmethod
    def w_shape(in_maps, out_maps, group):
        return (out_maps, in_maps // group)


@register
class Deconvolution(_ConvBase):
    type_name = "Deconvolution"
    param_prefix = "deconv"
    fn = staticmethod(F.deconvolution)
    fast_fn = staticmethod(cpu_kernels.deconvolution)
    in_axis = 0  # W is (in_maps, out_maps, ...)

    @staticmethod
    def spatial(i, k, p, s, d):
        return (i - 1) * s - 2 * p + d * (k - 1) + 1

    @staticmethod
    def w_shape(in_maps, out_maps, group):
        return (in_maps, out_maps // group)


@register
class BatchNormalization(LayerType):
    type_name = "BatchNormalization"
    params = ("beta", "gamma", "mean", "var")
    fixed_params = ("mean", "var")  # running statistics: a moving average, never a solver's
    param_prefix = "bn"
    settings = {
        "axes": Setting(shape(minimum=0), (0,), doc="axes kept, counted in the sample (0 = maps)"),
        "decay_rate": Setting(float_(0.0), 0.9),
        "epsilon": Setting(float_(0.0), 1e-5),
        "batch_stat": Setting(bool_, True, doc="false: use the running statistics (runtime networks)"),
        # NNabla's PF.batch_normalization starts beta, mean at 0 and gamma, var at 1; NNC's samples
        # start the running variance at 0 (var.InitializerMultiplier=0.0), which `import` keeps.
        "beta_init": Setting(init.parse, ("Constant", 0.0)),
        "gamma_init": Setting(init.parse, ("Constant", 1.0)),
        "mean_init": Setting(init.parse, ("Constant", 0.0)),
        "var_init": Setting(init.parse, ("Constant", 1.0)),
    }

    def out_shape(self, s, in_shapes):
        if max(s["axes"]) >= len(in_shapes[0]):
            raise ShapeError(f"axes within the input's {len(in_shapes[0])} axes, got {list(s['axes'])} "
                             f"for shape {in_shapes[0]}")
        return in_shapes[0]

    def param_shapes(self, s, in_shapes):
        full = (1,) + tuple(n if i in s["axes"] else 1 for i, n in enumerate(in_shapes[0]))
        return {p: full for p in self.params}

    def initializer(self, s, pname, in_shapes):
        return init.make(s[f"{pname}_init"], 1, 1)

    def build(self, s, xs, ctx):
        if s["batch_stat"] and ctx.comm.size > 1:  # the batch is split over MPI ranks: whole-batch statistics
            from .sync_bn import sync_batch_normalization
            return sync_batch_normalization(xs[0], ctx.param("beta"), ctx.param("gamma"), ctx.param("mean"),
                                            ctx.param("var"), [a + 1 for a in s["axes"]], s["decay_rate"],
                                            s["epsilon"], ctx.comm)
        from .sync_bn import batch_normalization   # NumPy's on the CPU, NNabla's otherwise
        return batch_normalization(xs[0], ctx.param("beta"), ctx.param("gamma"), ctx.param("mean"),
                                   ctx.param("var"), axes=[a + 1 for a in s["axes"]],
                                   decay_rate=s["decay_rate"], eps=s["epsilon"], batch_stat=s["batch_stat"])


def _activation(name, fn, extra=None):
    settings = extra or {}

    class Act(LayerType):
        type_name = name
        doc = f"{name} activation"

        def build(self, s, xs, ctx):
            return fn(xs[0], s)
    Act.settings = settings
    Act.__name__ = Act.__qualname__ = name
    return register(Act)


Sigmoid = _activation("Sigmoid", lambda x, s: F.sigmoid(x))
Tanh = _activation("Tanh", lambda x, s: F.tanh(x))
ReLU = _activation("ReLU", lambda x, s: cpu_kernels.relu(x))
LeakyReLU = _activation("LeakyReLU", lambda x, s: F.leaky_relu(x, s["alpha"]),
                        {"alpha": Setting(float_(0.0), 0.1)})
ELU = _activation("ELU", lambda x, s: F.elu(x, s["alpha"]), {"alpha": Setting(float_(0.0), 1.0)})
Identity = _activation("Identity", lambda x, s: F.identity(x))


@register
class Dropout(LayerType):
    type_name = "Dropout"
    doc = "zero each value with probability p while training (p: 0 in a runtime network turns it off)"
    settings = {"p": Setting(float_(0.0), 0.5, doc="drop probability, 0 <= p < 1")}

    def out_shape(self, s, in_shapes):
        if s["p"] >= 1:
            raise ShapeError(f"p below 1 (a drop probability), got {s['p']}")
        return in_shapes[0]

    def build(self, s, xs, ctx):
        if s["p"] == 0:
            return F.identity(xs[0])
        # A seed from the run's rng: the masks, and so the run, are the same every time. Each MPI
        # rank its own masks (offset by rank), not the same pattern on every slice of the batch.
        seed = (int(ctx.rng.randint(0, 2 ** 31 - 1)) + ctx.comm.rank) % (2 ** 31 - 1)
        return F.dropout(xs[0], s["p"], seed=seed)


@register
class Concatenate(LayerType):
    type_name = "Concatenate"
    num_inputs = (2, None)
    settings = {"axis": Setting(int_(0), 0, doc="axis in the sample (0 = maps)")}

    def out_shape(self, s, in_shapes):
        a = s["axis"]
        first = in_shapes[0]
        if any(len(sh) != len(first) for sh in in_shapes) or a >= len(first):
            raise ShapeError(f"inputs of equal rank with axis {a} inside them, got {list(in_shapes)}")
        for sh in in_shapes[1:]:
            if sh[:a] + sh[a + 1:] != first[:a] + first[a + 1:]:
                raise ShapeError(f"inputs equal except on axis {a}, got {first} and {sh}")
        return first[:a] + (sum(sh[a] for sh in in_shapes),) + first[a + 1:]

    def build(self, s, xs, ctx):
        return F.concatenate(*xs, axis=s["axis"] + 1)


@register
class Add2(LayerType):
    type_name = "Add2"
    num_inputs = (2, 2)
    doc = "elementwise sum of two inputs (residual and skip connections)"

    def out_shape(self, s, in_shapes):
        if in_shapes[0] != in_shapes[1]:
            raise ShapeError(f"two inputs of one shape, got {in_shapes[0]} and {in_shapes[1]}")
        return in_shapes[0]

    def build(self, s, xs, ctx):
        return F.add2(xs[0], xs[1])


@register
class Reshape(LayerType):
    type_name = "Reshape"
    settings = {"out_shape": Setting(shape(), required=True)}

    def out_shape(self, s, in_shapes):
        if _prod(s["out_shape"]) != _prod(in_shapes[0]):
            raise ShapeError(f"out_shape with {_prod(in_shapes[0])} elements like the input "
                             f"{in_shapes[0]}, got {s['out_shape']} ({_prod(s['out_shape'])})")
        return s["out_shape"]

    def build(self, s, xs, ctx):
        return F.reshape(xs[0], (xs[0].shape[0],) + s["out_shape"], inplace=False)


@register
class Unpooling(LayerType):
    type_name = "Unpooling"
    doc = "repeats each value kernel_shape times (nearest-neighbour up-sampling)"
    settings = {"kernel_shape": Setting(shape(), required=True)}

    def out_shape(self, s, in_shapes):
        k, x = s["kernel_shape"], in_shapes[0]
        if len(k) > len(x):
            raise ShapeError(f"an input of at least {len(k)} axes, got {x}")
        return x[:len(x) - len(k)] + tuple(a * b for a, b in zip(x[len(x) - len(k):], k))

    def build(self, s, xs, ctx):
        return F.unpooling(xs[0], s["kernel_shape"])


class _Pooling(LayerType):
    settings = {
        "kernel_shape": Setting(shape(), required=True),
        "stride": Setting(shape()),
        "pad": Setting(shape(minimum=0)),
        "ignore_border": Setting(bool_, True),
    }

    def geometry(self, s, x):
        k = s["kernel_shape"]
        st = s["stride"] or k
        p = s["pad"] or (0,) * len(k)
        if len(k) > len(x) or len(st) != len(k) or len(p) != len(k):
            raise ShapeError(f"kernel_shape, stride and pad of one length, at most the input's rank "
                             f"{len(x)}, got {k}, {st}, {p}")
        return k, st, p

    def out_shape(self, s, in_shapes):
        x = in_shapes[0]
        k, st, p = self.geometry(s, x)
        sp = x[len(x) - len(k):]
        if s["ignore_border"]:
            out = tuple((i + 2 * pi - ki) // si + 1 for i, ki, si, pi in zip(sp, k, st, p))
        else:
            out = tuple(-(-(i + 2 * pi) // si) for i, si, pi in zip(sp, st, p))
        if min(out) < 1:
            raise ShapeError(f"an input at least as large as kernel {k}, got {x}")
        return x[:len(x) - len(k)] + out

    def build(self, s, xs, ctx):
        k, st, p = self.geometry(s, xs[0].shape[1:])
        return self.fn(xs[0], k, st, s["ignore_border"], p)


@register
class MaxPooling(_Pooling):
    type_name = "MaxPooling"
    fn = staticmethod(F.max_pooling)


@register
class AveragePooling(_Pooling):
    type_name = "AveragePooling"
    fn = staticmethod(F.average_pooling)


@register
class OneHot(LayerType):
    type_name = "OneHot"
    doc = "a class index (shape [1]) to a one-hot vector of `shape` classes"
    settings = {"shape": Setting(shape(length=1), required=True, doc="number of classes")}

    def out_shape(self, s, in_shapes):
        if in_shapes[0] != (1,):
            raise ShapeError(f"a class index of shape (1,), got {in_shapes[0]}")
        return s["shape"]

    def build(self, s, xs, ctx):
        return F.one_hot(xs[0], s["shape"])
