"""The rest of NNC's palette that NNabla computes: activations, arithmetic between layers, shape
plumbing, reductions, interpolation, data augmentation, normalisations, PReLU, Embed, Huber loss.

Parameter-free layer types are one table row each (`FUNCTIONS`): the NNabla function, its
settings (NNabla's argument names, axes counted in the sample as everywhere in nncgan) and how
the settings become its arguments. Their output shape is NNabla's own: the function is set up on
a batch-of-one placeholder, which allocates nothing, so `check` agrees with what trains and a
setting NNabla refuses is reported with NNabla's reason. Layer types with parameters are classes.
"""
import nnabla as nn
import nnabla.functions as F

from . import initializers as init
from .base import LayerType, Param, Setting, ShapeError, register, shape, int_, float_, bool_, choice, f32, snake
from .core import _Pooling
from .losses import _Loss


def _axes(v, first=1):
    """Axes counted in the sample -> NNabla's, which count the batch axis."""
    return [a + first for a in v]


def ints(v):
    """A list of integers (may be negative: Slice's start and stop)."""
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        raise ValueError("a list of integers")
    return tuple(v)


def _opt(parse):
    """A setting that may be left out (null): NNabla's default applies."""
    def p(v):
        return None if v is None else parse(v)
    return p


class _Function(LayerType):
    """A parameter-free layer: one NNabla function; the shape is what NNabla's setup says."""

    fn = None
    args = None          # (settings, input Variables, ctx or None) -> the function's output

    def from_nnp(self, f, in_shapes, params, out_shape):
        return {"val": f32(getattr(f, f"{self.fn_name}_param").val)} if self.settings else {}

    def _apply(self, s, xs, ctx):
        y = self.args(s, xs, ctx)
        return y[0] if isinstance(y, (tuple, list)) else y

    def out_shape(self, s, in_shapes):
        xs = [nn.Variable((1,) + tuple(sh)) for sh in in_shapes]
        try:
            y = self._apply(s, xs, None)
        except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as e:
            msg = str(e).strip().splitlines()
            raise ShapeError(f"inputs and settings NNabla's {self.fn_name} accepts; it says: "
                             f"{msg[-1] if msg else type(e).__name__}") from None
        return tuple(y.shape[1:])

    def build(self, s, xs, ctx):
        return self._apply(s, xs, ctx)


def _seed(ctx):
    """A seed from the run's rng (random layers draw the same masks every run); 0 while checking."""
    return int(ctx.rng.randint(0, 2 ** 31 - 1)) if ctx is not None else 0


def _nnp_readable(fn_name, settings):
    """Whether an NNP function `fn_name` imports as this layer: its NNabla message holds nothing but
    `val` when the layer has that one setting (and `inplace`, memory reuse), else nothing at all.
    The others (SELU's scale and alpha, Softmax's axis, ...) are written by export but not read."""
    from nnabla.utils import nnabla_pb2
    message = nnabla_pb2.Function.DESCRIPTOR.fields_by_name.get(f"{fn_name}_param")
    fields = {f.name for f in message.message_type.fields} - {"inplace"} if message else set()
    return fields == set(settings) and set(settings) <= {"val"}


def function(name, fn_name, args, settings=None, num_inputs=(1, 1), doc=""):
    settings = settings or {}
    cls = type(name, (_Function,), {"type_name": name, "fn_name": fn_name, "args": staticmethod(args),
                                     "settings": settings, "num_inputs": num_inputs,
                                     "nnp_import": _nnp_readable(fn_name, settings),
                                     "doc": doc or f"NNabla's {fn_name}"})
    return register(cls)


# name -> (NNabla function, settings, (s, xs, ctx) -> output, inputs, doc)
S, Fl, B, Sh = Setting, float_, bool_, shape
FUNCTIONS = {
    # activations
    "Swish": ("swish", {}, lambda s, xs, c: F.swish(xs[0]), (1, 1), "x sigmoid(x)"),
    "GELU": ("gelu", {}, lambda s, xs, c: F.gelu(xs[0]), (1, 1), ""),
    "SELU": ("selu", {}, lambda s, xs, c: F.selu(xs[0]), (1, 1), ""),
    "SoftPlus": ("softplus", {}, lambda s, xs, c: F.softplus(xs[0]), (1, 1), ""),
    "SoftSign": ("softsign", {}, lambda s, xs, c: F.softsign(xs[0]), (1, 1), ""),
    "HardTanh": ("hard_tanh", {}, lambda s, xs, c: F.hard_tanh(xs[0]), (1, 1), ""),
    "HardSigmoid": ("hard_sigmoid", {}, lambda s, xs, c: F.hard_sigmoid(xs[0]), (1, 1), ""),
    "CReLU": ("crelu", {"axis": S(int_(0), 0)}, lambda s, xs, c: F.crelu(xs[0], s["axis"] + 1), (1, 1),
              "ReLU of x and of -x, concatenated on `axis`"),
    "Softmax": ("softmax", {"axis": S(_opt(int_(0)), doc="sample axis; default the last")},
                lambda s, xs, c: F.softmax(xs[0], None if s["axis"] is None else s["axis"] + 1), (1, 1), ""),
    "LogSoftmax": ("log_softmax", {"axis": S(_opt(int_(0)), doc="sample axis; default the last")},
                   lambda s, xs, c: F.log_softmax(xs[0], None if s["axis"] is None else s["axis"] + 1), (1, 1), ""),
    "Abs": ("abs", {}, lambda s, xs, c: F.abs(xs[0]), (1, 1), ""),
    "Exp": ("exp", {}, lambda s, xs, c: F.exp(xs[0]), (1, 1), ""),
    "Log": ("log", {}, lambda s, xs, c: F.log(xs[0]), (1, 1), ""),
    # arithmetic between layers (NNabla broadcasts) and with a number
    "Sub2": ("sub2", {}, lambda s, xs, c: F.sub2(xs[0], xs[1]), (2, 2), "first input minus the second"),
    "Mul2": ("mul2", {}, lambda s, xs, c: F.mul2(xs[0], xs[1]), (2, 2), "elementwise product"),
    "Div2": ("div2", {}, lambda s, xs, c: F.div2(xs[0], xs[1]), (2, 2), "first input over the second"),
    "Pow2": ("pow2", {}, lambda s, xs, c: F.pow2(xs[0], xs[1]), (2, 2), "first input to the second's power"),
    "Maximum2": ("maximum2", {}, lambda s, xs, c: F.maximum2(xs[0], xs[1]), (2, 2), ""),
    "Minimum2": ("minimum2", {}, lambda s, xs, c: F.minimum2(xs[0], xs[1]), (2, 2), ""),
    "AddScalar": ("add_scalar", {"val": S(Fl(), 1.0)}, lambda s, xs, c: F.add_scalar(xs[0], s["val"]), (1, 1), ""),
    "MulScalar": ("mul_scalar", {"val": S(Fl(), 1.0)}, lambda s, xs, c: F.mul_scalar(xs[0], s["val"]), (1, 1), ""),
    "PowScalar": ("pow_scalar", {"val": S(Fl(), 1.0)}, lambda s, xs, c: F.pow_scalar(xs[0], s["val"]), (1, 1), ""),
    "RSubScalar": ("r_sub_scalar", {"val": S(Fl(), 1.0)}, lambda s, xs, c: F.r_sub_scalar(xs[0], s["val"]), (1, 1),
                   "val - x"),
    "RDivScalar": ("r_div_scalar", {"val": S(Fl(), 1.0)}, lambda s, xs, c: F.r_div_scalar(xs[0], s["val"]), (1, 1),
                   "val / x"),
    # shape plumbing
    "Pad": ("pad", {"pad_width": S(Sh(minimum=0), required=True, doc="before/after pairs for the last axes"),
                    "mode": S(choice("constant", "reflect", "repeat"), "constant"),
                    "constant_value": S(Fl(), 0.0)},
            lambda s, xs, c: F.pad(xs[0], s["pad_width"], s["mode"], s["constant_value"]), (1, 1), ""),
    "Slice": ("slice", {"start": S(ints, required=True), "stop": S(ints, required=True), "step": S(_opt(ints))},
              lambda s, xs, c: F.slice(xs[0], (0,) + s["start"], (xs[0].shape[0],) + s["stop"],
                                       (1,) + (s["step"] or (1,) * len(s["start"]))), (1, 1),
              "start/stop/step over the sample's axes"),
    "Split": ("split", {"axis": S(int_(0), 0), "index": S(int_(0), 0, doc="which piece this layer outputs")},
              lambda s, xs, c: _piece(F.split(xs[0], s["axis"] + 1), s["index"]), (1, 1),
              "one piece of the input split along `axis` (NNC's output pins: one Split layer per piece)"),
    "Stack": ("stack", {"axis": S(int_(0), 0)}, lambda s, xs, c: F.stack(*xs, axis=s["axis"] + 1), (1, None), ""),
    "Tile": ("tile", {"reps": S(Sh(), required=True, doc="repetitions of the sample's axes")},
             lambda s, xs, c: F.tile(xs[0], (1,) + s["reps"]), (1, 1), ""),
    "Transpose": ("transpose", {"axes": S(Sh(minimum=0), required=True, doc="the sample's axes in their new order")},
                  lambda s, xs, c: F.transpose(xs[0], [0] + _axes(s["axes"])), (1, 1), ""),
    "Broadcast": ("broadcast", {"shape": S(Sh(), required=True)},
                  lambda s, xs, c: F.broadcast(xs[0], (xs[0].shape[0],) + s["shape"]), (1, 1), ""),
    "Flip": ("flip", {"axes": S(Sh(minimum=0), (0,))}, lambda s, xs, c: F.flip(xs[0], _axes(s["axes"])), (1, 1), ""),
    "Interpolate": ("interpolate", {
        "output_size": S(Sh(), required=True, doc="the size of the spatial axes"),
        "mode": S(choice("nearest", "linear"), "linear"), "align_corners": S(B, False),
        "half_pixel": S(B, False)},
        lambda s, xs, c: F.interpolate(xs[0], output_size=s["output_size"], mode=s["mode"],
                                       align_corners=s["align_corners"], half_pixel=s["half_pixel"]), (1, 1),
        "up- or down-sampling of the spatial axes, nearest or (bi/tri)linear"),
    "GlobalAveragePooling": ("global_average_pooling", {}, lambda s, xs, c: F.global_average_pooling(xs[0]),
                             (1, 1), "the mean of each map"),
    # reductions
    "Sum": ("sum", {"axes": S(_opt(Sh(minimum=0)), doc="sample axes; default all"), "keep_dims": S(B, False)},
            lambda s, xs, c: F.sum(xs[0], _red(s, xs), s["keep_dims"]), (1, 1), ""),
    "Mean": ("mean", {"axes": S(_opt(Sh(minimum=0)), doc="sample axes; default all"), "keep_dims": S(B, False)},
             lambda s, xs, c: F.mean(xs[0], _red(s, xs), s["keep_dims"]), (1, 1), ""),
    "Max": ("max", {"axes": S(_opt(Sh(minimum=0)), doc="sample axes; default all"), "keep_dims": S(B, False)},
            lambda s, xs, c: F.max(xs[0], _red(s, xs), s["keep_dims"]), (1, 1), ""),
    "Min": ("min", {"axes": S(_opt(Sh(minimum=0)), doc="sample axes; default all"), "keep_dims": S(B, False)},
            lambda s, xs, c: F.min(xs[0], _red(s, xs), s["keep_dims"]), (1, 1), ""),
    # data augmentation (training networks: each draw is seeded from the run's rng)
    "RandomFlip": ("random_flip", {"axes": S(Sh(minimum=0), (2,), doc="sample axes flipped at random")},
                   lambda s, xs, c: F.random_flip(xs[0], _axes(s["axes"]), seed=_seed(c)), (1, 1), ""),
    "RandomShift": ("random_shift", {"shifts": S(Sh(minimum=0), required=True, doc="the most pixels per axis"),
                                     "border_mode": S(choice("nearest", "reflect"), "nearest")},
                    lambda s, xs, c: F.random_shift(xs[0], s["shifts"], s["border_mode"], seed=_seed(c)), (1, 1), ""),
    "ImageAugmentation": ("image_augmentation", {
        "min_scale": S(Fl(0.0), 1.0), "max_scale": S(Fl(0.0), 1.0), "angle": S(Fl(0.0), 0.0),
        "aspect_ratio": S(Fl(0.0), 1.0), "distortion": S(Fl(0.0), 0.0), "flip_lr": S(B, False),
        "flip_ud": S(B, False), "brightness": S(Fl(0.0), 0.0), "contrast": S(Fl(0.0), 1.0),
        "noise": S(Fl(0.0), 0.0)},
        lambda s, xs, c: F.image_augmentation(
            xs[0], shape=xs[0].shape[1:], min_scale=s["min_scale"], max_scale=s["max_scale"], angle=s["angle"],
            aspect_ratio=s["aspect_ratio"], distortion=s["distortion"], flip_lr=s["flip_lr"], flip_ud=s["flip_ud"],
            brightness=s["brightness"], contrast=s["contrast"], noise=s["noise"], seed=_seed(c)), (1, 1), ""),
}


# NNabla's elementwise functions without settings: the layer type is the function's type in an NNP
UNARY = {"ReLU6": "relu6", "Mish": "mish", "LogSigmoid": "log_sigmoid", "TanhShrink": "tanh_shrink", "Sinc": "sinc",
         "Sin": "sin", "Cos": "cos", "Tan": "tan", "Sinh": "sinh", "Cosh": "cosh", "ASin": "asin", "ACos": "acos",
         "ATan": "atan", "ASinh": "asinh", "ACosh": "acosh", "ATanh": "atanh", "Erf": "erf", "Round": "round",
         "Ceil": "ceil", "Floor": "floor", "Unlink": "unlink"}
for _name, _fn in UNARY.items():
    FUNCTIONS[_name] = (_fn, {}, (lambda f: lambda s, xs, c: getattr(F, f)(xs[0]))(_fn), (1, 1), "")
FUNCTIONS.update({
    "CELU": ("celu", {"alpha": S(Fl(), 1.0), "axis": S(int_(0), 0)},
             lambda s, xs, c: F.celu(xs[0], s["alpha"], s["axis"] + 1), (1, 1), "ELU of x and of -x, concatenated"),
    "Sign": ("sign", {"alpha": S(Fl(), 1.0)}, lambda s, xs, c: F.sign(xs[0], s["alpha"]), (1, 1), ""),
    "MaximumScalar": ("maximum_scalar", {"val": S(Fl(), 1.0)}, lambda s, xs, c: F.maximum_scalar(xs[0], s["val"]),
                      (1, 1), ""),
    "MinimumScalar": ("minimum_scalar", {"val": S(Fl(), 1.0)}, lambda s, xs, c: F.minimum_scalar(xs[0], s["val"]),
                      (1, 1), ""),
    "RPowScalar": ("r_pow_scalar", {"val": S(Fl(), 1.0)}, lambda s, xs, c: F.r_pow_scalar(xs[0], s["val"]), (1, 1),
                   "val ** x"),
    "Prod": ("prod", {"axes": S(_opt(Sh(minimum=0)), doc="sample axes; default all"), "keep_dims": S(B, False)},
             lambda s, xs, c: F.prod(xs[0], _red(s, xs), s["keep_dims"]), (1, 1), ""),
    "Shift": ("shift", {"shifts": S(ints, required=True), "border_mode": S(choice("nearest", "reflect"), "nearest")},
              lambda s, xs, c: F.shift(xs[0], s["shifts"], s["border_mode"]), (1, 1), ""),
    "RandomCrop": ("random_crop", {"shape": S(Sh(), required=True, doc="the sample's shape after the crop")},
                   lambda s, xs, c: F.random_crop(xs[0], s["shape"], seed=_seed(c)), (1, 1), ""),
})


def _piece(ys, i):
    ys = ys if isinstance(ys, (tuple, list)) else (ys,)
    if i >= len(ys):
        raise ValueError(f"index below the number of pieces ({len(ys)}), got {i}")
    return ys[i]


def _red(s, xs):
    return list(range(1, len(xs[0].shape))) if s["axes"] is None else _axes(s["axes"])




for _name, (_fn, _settings, _args, _inputs, _doc) in FUNCTIONS.items():
    function(_name, _fn, _args, _settings, _inputs, _doc)


# ---- with parameters

def _normalization_params(per_element):
    """beta and gamma over the maps (Instance, Group) or over the whole sample (Layer)."""
    def stat(s, in_shapes):
        x = in_shapes[0]
        return (1,) + (tuple(x) if per_element else (x[0],) + (1,) * (len(x) - 1))
    return (Param("beta", stat, ("Constant", 0.0), used=lambda s: not s["no_bias"]),
            Param("gamma", stat, ("Constant", 1.0), used=lambda s: not s["no_scale"]))


class _Normalization(LayerType):
    """beta/gamma over the maps (Instance, Group) or the whole sample (Layer), as NNabla's PF."""

    nnp_import = True
    base_settings = {
        "epsilon": Setting(float_(0.0), 1e-5),
        "no_scale": Setting(bool_, False), "no_bias": Setting(bool_, False),
    }

    def build(self, s, xs, ctx):
        beta = None if s["no_bias"] else ctx.param("beta")
        gamma = None if s["no_scale"] else ctx.param("gamma")
        return self.fn(s, xs[0], beta, gamma)

    def from_nnp(self, f, in_shapes, params, out_shape):
        p = getattr(f, f"{snake(self.type_name)}_param")
        if list(p.batch_axis) not in ([], [0]) or getattr(p, "channel_axis", 1) != 1:
            raise ValueError("batch axis 0 and channel axis 1")
        out = {"epsilon": f32(p.eps), "no_scale": "gamma" not in params, "no_bias": "beta" not in params}
        if "num_groups" in self.settings:
            out["num_groups"] = p.num_groups
        return out


@register
class InstanceNormalization(_Normalization):
    type_name = "InstanceNormalization"
    param_prefix = "instance_normalization"
    parameters = _normalization_params(per_element=False)
    settings = dict(_Normalization.base_settings)
    doc = "normalises each map of each sample (style transfer, CycleGAN)"

    def fn(self, s, x, beta, gamma):
        return F.instance_normalization(x, beta, gamma, channel_axis=1, batch_axis=0, eps=s["epsilon"])


@register
class LayerNormalization(_Normalization):
    type_name = "LayerNormalization"
    param_prefix = "layer_normalization"
    parameters = _normalization_params(per_element=True)
    settings = dict(_Normalization.base_settings)
    doc = "normalises each sample over all its values"

    def fn(self, s, x, beta, gamma):
        return F.layer_normalization(x, beta, gamma, batch_axis=0, eps=s["epsilon"])


@register
class GroupNormalization(_Normalization):
    type_name = "GroupNormalization"
    param_prefix = "group_normalization"
    parameters = _normalization_params(per_element=False)
    settings = {"num_groups": Setting(int_(1), 1, doc="groups of maps normalised together"),
                **_Normalization.base_settings}

    def out_shape(self, s, in_shapes):
        if in_shapes[0][0] % s["num_groups"]:
            raise ShapeError(f"maps ({in_shapes[0][0]}) divisible by num_groups {s['num_groups']}")
        return in_shapes[0]

    def fn(self, s, x, beta, gamma):
        return F.group_normalization(x, beta, gamma, num_groups=s["num_groups"], channel_axis=1, batch_axis=0,
                                     eps=s["epsilon"])


@register
class PReLU(LayerType):
    type_name = "PReLU"
    param_prefix = "prelu"
    nnp_import = True
    doc = "LeakyReLU whose negative slope learns (one per map, or one shared)"
    settings = {"shared": Setting(bool_, False, doc="one slope for all maps")}
    parameters = (Param("slope", lambda s, x: () if s["shared"] else (x[0][0],), ("Constant", 0.25)),)

    def build(self, s, xs, ctx):
        return F.prelu(xs[0], ctx.param("slope"), base_axis=1)

    def from_nnp(self, f, in_shapes, params, out_shape):
        return {"shared": len(in_shapes[1]) == 0}


@register
class Embed(LayerType):
    type_name = "Embed"
    param_prefix = "embed"
    nnp_import = True
    doc = "class indices to learned vectors of `n_features`"
    settings = {"n_inputs": Setting(int_(1), required=True, doc="number of classes"),
                "n_features": Setting(int_(1), required=True)}
    parameters = (Param("W", lambda s, x: (s["n_inputs"], s["n_features"]), ("Uniform", 1.0),
                        lambda s, x: (s["n_inputs"], s["n_features"], (1,))),)

    def out_shape(self, s, in_shapes):
        return tuple(in_shapes[0]) + (s["n_features"],)

    def build(self, s, xs, ctx):
        return F.embed(xs[0], ctx.param("W"))

    def from_nnp(self, f, in_shapes, params, out_shape):
        return {"n_inputs": in_shapes[1][0], "n_features": in_shapes[1][1]}


def _loss(name, fn, setting, default, doc):
    """A loss of (prediction, target) with one setting of NNabla's function (its argument's name)."""
    cls = type(name, (_Loss,), {
        "type_name": name, "doc": doc,
        "settings": {**_Loss.settings, setting: Setting(float_(0.0), default)},
        "build": lambda self, s, xs, ctx: fn(xs[0], xs[1], s[setting]),
        "from_nnp": lambda self, f, *_: {setting: f32(getattr(getattr(f, f"{snake(name)}_param"), setting))}})
    return register(cls)


HuberLoss = _loss("HuberLoss", F.huber_loss, "delta", 1.0,
                  "squared error within delta of the target, absolute error beyond")
EpsilonInsensitiveLoss = _loss("EpsilonInsensitiveLoss", F.epsilon_insensitive_loss, "epsilon", 0.1,
                               "|prediction - target| beyond epsilon, 0 within")


@register
class SumPooling(_Pooling):
    type_name = "SumPooling"
    fn = staticmethod(F.sum_pooling)


# ---- spectral normalisation of a weight: `spectral_norm: true` on a layer whose W declares
# Param(spectral_norm=dim) (Affine, Convolution, Deconvolution)


def spectral_norm(layer, var, rng):
    """W -> W / sigma(W) with NNabla's F.spectral_norm; u (power iteration's vector) is a fixed
    parameter '<scope>/<prefix>/u' that the forward pass updates, saved with the others."""
    from nnabla.parameter import get_parameter_or_create
    from . import get
    dim = get(layer.type).param("W").spectral_norm  # W's output axis, as NNabla's examples
    u_init = init.make(("Normal", 1.0), 1, 1)
    u_init.rng = rng
    u = get_parameter_or_create(layer.param_path("u", get(layer.type).param_prefix), (var.shape[dim],), u_init,
                                need_grad=False)
    return F.spectral_norm(var, u.get_unlinked_variable(need_grad=False), dim=dim, itr=1)


# ---- the palette's groups, as NNC's layer palette shows them (an unknown type is answered by group)
GROUPS = {
    "IO": ("Input",),
    "Parametric": ("Affine", "Convolution", "DepthwiseConvolution", "Deconvolution", "Embed", "PReLU"),
    "Normalization": ("BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization"),
    "Activation": ("Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "PReLU", "SELU", "CReLU", "Swish", "GELU",
                   "SoftPlus", "SoftSign", "HardTanh", "HardSigmoid", "Softmax", "LogSoftmax", "Identity"),
    "Pooling and resizing": ("MaxPooling", "AveragePooling", "SumPooling", "GlobalAveragePooling", "Unpooling", "Interpolate"),
    "Arithmetic": ("Add2", "Sub2", "Mul2", "Div2", "Pow2", "Maximum2", "Minimum2", "AddScalar", "MulScalar",
                   "PowScalar", "RSubScalar", "RDivScalar", "RPowScalar", "MaximumScalar", "MinimumScalar", "Abs",
                   "Exp", "Log", "Sign", "Round", "Ceil", "Floor", "Sin", "Cos", "Tan", "Sinh", "Cosh", "ASin",
                   "ACos", "ATan", "ASinh", "ACosh", "ATanh", "Erf", "Sinc"),
    "Reduction": ("Sum", "Mean", "Max", "Min", "Prod"),
    "Shape": ("Reshape", "Concatenate", "Split", "Stack", "Slice", "Pad", "Tile", "Transpose", "Broadcast",
              "Flip", "Shift", "OneHot", "Unlink"),
    "Augmentation": ("Dropout", "RandomFlip", "RandomShift", "RandomCrop", "ImageAugmentation"),
}


def grouped_types():
    """'Group: A, B, ...' lines for every registered type (a loss is in Loss, anything unlisted in Other)."""
    from .base import REGISTRY
    placed, lines = set(), []
    for group, names in list(GROUPS.items()) + [("Loss", tuple(n for n, t in REGISTRY.items() if t.is_loss))]:
        names = [n for n in names if n in REGISTRY and (n not in placed or n == "PReLU")]
        placed.update(names)
        if names:
            lines.append(f"{group}: {', '.join(names)}")
    rest = sorted(set(REGISTRY) - placed)
    if rest:
        lines.append(f"Other: {', '.join(rest)}")
    return lines
