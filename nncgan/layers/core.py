"""NNC's basic layers: inputs, affine/convolution, normalisation, activations, shape plumbing."""
import numpy as np
import nnabla.functions as F

from . import cpu_kernels, label_maps
from .base import (LayerType, Param, Setting, ShapeError, register, shape, int_, float_, bool_, choice, any_str,
                   f32, snake)

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


def _affine_fan(s, in_shapes):
    return _prod(in_shapes[0]), _prod(s["out_shape"])


def _with_bias(s):
    return s["with_bias"]


def _base_axis(p):
    if p.base_axis not in (0, 1):
        raise ValueError(f"base_axis 1 (one batch axis), got {p.base_axis}")


def _no_channel_last(p):
    if getattr(p, "channel_last", False):
        raise ValueError("channel-first data (channel_last false)")


@register
class Affine(LayerType):
    type_name = "Affine"
    param_prefix = "affine"
    nnp_import = True
    settings = {
        "out_shape": Setting(shape(), required=True),
        "with_bias": Setting(bool_, True),
    }
    parameters = (
        Param("W", lambda s, x: (_prod(x[0]),) + s["out_shape"], ("NormalAffineHeForward", 1.0), _affine_fan,
              spectral_norm=1),
        Param("b", lambda s, x: s["out_shape"], ("Constant", 0.0), _affine_fan, used=_with_bias),
    )

    def out_shape(self, s, in_shapes):
        return s["out_shape"]

    def build(self, s, xs, ctx):
        return cpu_kernels.affine(xs[0], ctx.param("W"), ctx.param("b") if s["with_bias"] else None, base_axis=1)

    def from_nnp(self, f, in_shapes, params, out_shape):
        _base_axis(f.affine_param)
        return {"out_shape": out_shape, "with_bias": "b" in params}


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
    }


def _conv_fan(s, in_shapes):
    return in_shapes[0][0] // s["group"], s["out_maps"], s["kernel_shape"]


class _ConvBase(LayerType):
    settings = _conv_settings()
    nnc_properties = {"pad": "Padding", "stride": "Strides"}
    nnp_import = True

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

    def out_shape(self, s, in_shapes):
        k, p, st, d = self.geometry(s, in_shapes[0])
        sp = tuple(self.spatial(i, ki, pi, si, di) for i, ki, pi, si, di in zip(in_shapes[0][1:], k, p, st, d))
        if min(sp) < 1:
            raise ShapeError(f"an output of at least one pixel; kernel {k}, pad {p}, stride {st} "
                             f"on input {in_shapes[0]} give {sp}")
        return (s["out_maps"],) + sp

    def build(self, s, xs, ctx):
        k, p, st, d = self.geometry(s, xs[0].shape[1:])
        fn = self.fast_fn if cpu_kernels.enabled() else self.fn  # BLAS on the CPU, NNabla's on CUDA
        return label_maps.build(fn, xs[0], ctx.param("W"), ctx.param("b") if s["with_bias"] else None,
                                self.in_axis, pad=p, stride=st, dilation=d, group=s["group"])

    def from_nnp(self, f, in_shapes, params, out_shape):
        p = getattr(f, f"{snake(self.type_name)}_param")
        _base_axis(p)
        _no_channel_last(p)
        if getattr(p, "output_padding", None) is not None and any(p.output_padding.dim):
            raise ValueError(f"no output_padding (nncgan's {self.type_name} has none)")
        if "W" not in params:
            raise ValueError(f"expected a parameter W (the kernel) among its inputs, named "
                             f"'<scope>/{self.param_prefix}/W'")
        w, group = in_shapes[list(f.input).index(params["W"])], p.group or 1
        if len(w) < 3:
            raise ValueError(f"expected W of shape (maps, maps, *kernel), got {tuple(w)}")
        return {"out_maps": self.out_maps_of(w, group), "kernel_shape": list(w[2:]),
                "pad": list(p.pad.dim), "stride": list(p.stride.dim), "dilation": list(p.dilation.dim),
                "group": group, "with_bias": "b" in params}


def _conv_params(w_shape, sn_dim):
    """W (its maps' axes from (in maps, out maps, group), then the kernel) and b of a (de)convolution."""
    return (Param("W", lambda s, x: w_shape(x[0][0], s["out_maps"], s["group"]) + s["kernel_shape"],
                  ("NormalConvolutionHeForward", 1.0), _conv_fan, spectral_norm=sn_dim),
            Param("b", lambda s, x: (s["out_maps"],), ("Constant", 0.0), used=_with_bias))


@register
class Convolution(_ConvBase):
    type_name = "Convolution"
    param_prefix = "conv"
    fn = staticmethod(F.convolution)
    fast_fn = staticmethod(cpu_kernels.convolution)
    in_axis = 1  # W is (out_maps, in_maps, ...)
    parameters = _conv_params(lambda i, o, g: (o, i // g), sn_dim=0)

    @staticmethod
    def spatial(i, k, p, s, d):
        return (i + 2 * p - d * (k - 1) - 1) // s + 1

    @staticmethod
    def out_maps_of(w, group):
        return w[0]


@register
class Deconvolution(_ConvBase):
    type_name = "Deconvolution"
    param_prefix = "deconv"
    fn = staticmethod(F.deconvolution)
    fast_fn = staticmethod(cpu_kernels.deconvolution)
    in_axis = 0  # W is (in_maps, out_maps, ...)
    parameters = _conv_params(lambda i, o, g: (i, o // g), sn_dim=1)

    @staticmethod
    def spatial(i, k, p, s, d):
        return (i - 1) * s - 2 * p + d * (k - 1) + 1

    @staticmethod
    def out_maps_of(w, group):
        return w[1] * group


def _bn_shape(s, in_shapes):
    return (1,) + tuple(n if i in s["axes"] else 1 for i, n in enumerate(in_shapes[0]))


@register
class DepthwiseConvolution(LayerType):
    type_name = "DepthwiseConvolution"
    doc = "each input map convolved with its own `multiplier` kernels (NNabla's depthwise_convolution)"
    param_prefix = "depthwise_conv"
    nnc_properties = {"pad": "Padding", "stride": "Strides"}
    nnp_import = True
    settings = {**{k: v for k, v in _conv_settings().items() if k not in ("out_maps", "group")},
                "multiplier": Setting(int_(1), 1, doc="output maps per input map")}
    parameters = (
        Param("W", lambda s, x: (x[0][0] * s["multiplier"],) + s["kernel_shape"],
              ("NormalConvolutionHeForward", 1.0), lambda s, x: (1, s["multiplier"], s["kernel_shape"])),
        Param("b", lambda s, x: (x[0][0] * s["multiplier"],), ("Constant", 0.0), used=_with_bias),
    )

    @staticmethod
    def as_convolution(s, in_shape):
        """The same computation as Convolution settings: one group per input map."""
        return {**s, "out_maps": in_shape[0] * s["multiplier"], "group": in_shape[0]}

    def out_shape(self, s, in_shapes):
        return Convolution().out_shape(self.as_convolution(s, in_shapes[0]), in_shapes)

    def build(self, s, xs, ctx):
        k, p, st, d = Convolution().geometry(self.as_convolution(s, xs[0].shape[1:]), xs[0].shape[1:])
        return F.depthwise_convolution(xs[0], ctx.param("W"), ctx.param("b") if s["with_bias"] else None,
                                       base_axis=1, pad=p, stride=st, dilation=d, multiplier=s["multiplier"])

    def from_nnp(self, f, in_shapes, params, out_shape):
        p = f.depthwise_convolution_param
        _base_axis(p)
        w = in_shapes[list(f.input).index(params["W"])]
        return {"kernel_shape": list(w[1:]), "pad": list(p.pad.dim), "stride": list(p.stride.dim),
                "dilation": list(p.dilation.dim), "multiplier": p.multiplier or 1, "with_bias": "b" in params}


@register
class BatchNormalization(LayerType):
    type_name = "BatchNormalization"
    param_prefix = "bn"
    nnp_import = True
    settings = {
        "axes": Setting(shape(minimum=0), (0,), doc="axes kept, counted in the sample (0 = maps)"),
        "decay_rate": Setting(float_(0.0), 0.9),
        "epsilon": Setting(float_(0.0), 1e-5),
        "batch_stat": Setting(bool_, True, doc="false: use the running statistics (runtime networks)"),
    }
    # NNabla's PF.batch_normalization starts beta, mean at 0 and gamma, var at 1; NNC's samples
    # start the running variance at 0 (var.InitializerMultiplier=0.0), which `import` keeps.
    # mean and var are running statistics: a moving average, never a solver's.
    parameters = (Param("beta", _bn_shape, ("Constant", 0.0)), Param("gamma", _bn_shape, ("Constant", 1.0)),
                  Param("mean", _bn_shape, ("Constant", 0.0), learns=False),
                  Param("var", _bn_shape, ("Constant", 1.0), learns=False))

    def out_shape(self, s, in_shapes):
        if max(s["axes"]) >= len(in_shapes[0]):
            raise ShapeError(f"axes within the input's {len(in_shapes[0])} axes, got {list(s['axes'])} "
                             f"for shape {in_shapes[0]}")
        return in_shapes[0]

    def from_nnp(self, f, in_shapes, params, out_shape):
        p = f.batch_normalization_param
        if getattr(p, "no_scale", False) or getattr(p, "no_bias", False):
            raise ValueError("beta and gamma both present (no_scale/no_bias are not supported)")
        return {"axes": [a - 1 for a in p.axes], "decay_rate": f32(p.decay_rate), "epsilon": f32(p.eps),
                "batch_stat": p.batch_stat}

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


def _activation(name, fn, extra=None, nnp_field=None):
    """An activation; `nnp_field`: NNabla's <fn>_param message its settings are read from in an NNP."""
    settings = extra or {}

    class Act(LayerType):
        type_name = name
        doc = f"{name} activation"
        nnp_import = True

        def build(self, s, xs, ctx):
            return fn(xs[0], s)

        def from_nnp(self, f, in_shapes, params, out_shape):
            return {k: f32(getattr(getattr(f, nnp_field), k)) for k in settings}
    Act.settings = settings
    Act.__name__ = Act.__qualname__ = name
    return register(Act)


Sigmoid = _activation("Sigmoid", lambda x, s: F.sigmoid(x))
Tanh = _activation("Tanh", lambda x, s: F.tanh(x))
ReLU = _activation("ReLU", lambda x, s: cpu_kernels.relu(x))
LeakyReLU = _activation("LeakyReLU", lambda x, s: cpu_kernels.leaky_relu(x, s["alpha"]),
                        {"alpha": Setting(float_(0.0), 0.1)}, "leaky_relu_param")
ELU = _activation("ELU", lambda x, s: F.elu(x, s["alpha"]), {"alpha": Setting(float_(0.0), 1.0)}, "elu_param")
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
    nnp_import = True
    settings = {"axis": Setting(int_(0), 0, doc="axis in the sample (0 = maps)")}

    def from_nnp(self, f, in_shapes, params, out_shape):
        return {"axis": f.concatenate_param.axis - 1}

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
    nnp_import = True
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
    nnp_import = True
    settings = {"out_shape": Setting(shape(), required=True)}

    def from_nnp(self, f, in_shapes, params, out_shape):
        return {"out_shape": list(f.reshape_param.shape.dim[1:])}

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
    nnp_import = True
    settings = {"kernel_shape": Setting(shape(), required=True)}

    def from_nnp(self, f, in_shapes, params, out_shape):
        return {"kernel_shape": list(f.unpooling_param.kernel.dim)}

    def out_shape(self, s, in_shapes):
        k, x = s["kernel_shape"], in_shapes[0]
        if len(k) > len(x):
            raise ShapeError(f"an input of at least {len(k)} axes, got {x}")
        return x[:len(x) - len(k)] + tuple(a * b for a, b in zip(x[len(x) - len(k):], k))

    def build(self, s, xs, ctx):
        return cpu_kernels.unpooling(xs[0], s["kernel_shape"])


class _Pooling(LayerType):
    settings = {
        "kernel_shape": Setting(shape(), required=True),
        "stride": Setting(shape()),
        "pad": Setting(shape(minimum=0)),
        "ignore_border": Setting(bool_, True),
    }
    nnc_properties = {"pad": "Padding", "stride": "Strides"}
    nnp_import = True

    def from_nnp(self, f, in_shapes, params, out_shape):
        p = getattr(f, f"{snake(self.type_name)}_param")
        _no_channel_last(p)
        return {"kernel_shape": list(p.kernel.dim), "stride": list(p.stride.dim), "pad": list(p.pad.dim),
                "ignore_border": p.ignore_border}

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
        else:  # NNabla's: a window starts at each stride within input + one side's pad, whatever the kernel
            out = tuple((i + pi - 1) // si + 1 for i, si, pi in zip(sp, st, p))
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
    nnp_import = True
    settings = {"shape": Setting(shape(length=1), required=True, doc="number of classes")}

    def from_nnp(self, f, in_shapes, params, out_shape):
        return {"shape": list(f.one_hot_param.shape.dim)}

    def out_shape(self, s, in_shapes):
        if in_shapes[0] != (1,):
            raise ShapeError(f"a class index of shape (1,), got {in_shapes[0]}")
        return s["shape"]

    def build(self, s, xs, ctx):
        return F.one_hot(xs[0], s["shape"])
