"""The layer registry: one class per layer type, registered by its NNC name.

A layer type is one class that declares:
- `settings`: name -> Setting (typed, with a default); NNC's property for each is its CamelCase
  (out_shape -> OutShape) unless `nnc_properties` names another (pad -> Padding);
- `parameters`: one `Param` each (name, shape, default initializer, learns or not, when used);
  its `<name>_init` setting (NNC's `<name>.Initializer`) and, for a W with `spectral_norm` set,
  the `spectral_norm` setting are added from it;
- `out_shape(s, in_shapes)`: the output shape, or ShapeError;
- `build(s, xs, ctx)`: the NNabla graph; `ctx.param(name)` gives a parameter Variable;
- its NNP form both ways: `build` traces to NNabla's functions and `param_prefix` names the
  parameters ('<scope>/<param_prefix>/<name>') on export; `nnp_import` and `from_nnp` read a
  function of the same type back into settings;
- `is_loss` / `is_input` and `num_inputs`.
Validation, `nncgan check`, the builder, the importers/exporters and the docs all read this one
declaration, so adding a layer type (with parameters, or a loss) is one class and nothing else.
"""
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import numpy as np

from . import initializers

REGISTRY = {}


class ShapeError(Exception):
    """A layer cannot take the shapes it was given; the message names what it expected."""


def register(cls):
    REGISTRY[cls.type_name] = cls()
    return cls


@dataclass(frozen=True)
class Setting:
    """One setting of a layer type: `parse` turns a YAML value into a checked value or raises ValueError."""

    parse: Callable[[Any], Any]
    default: Any = None
    required: bool = False
    doc: str = ""


# ---- typed setting parsers: each returns the normalised value or raises ValueError(what was expected)

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def int_(minimum=None):
    def parse(v):
        if not _is_int(v) or (minimum is not None and v < minimum):
            raise ValueError(f"an integer{'' if minimum is None else f' >= {minimum}'}")
        return v
    return parse


def float_(minimum=None):
    def parse(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or (minimum is not None and v < minimum):
            raise ValueError(f"a finite number{'' if minimum is None else f' >= {minimum}'}")
        return float(v)
    return parse


def bool_(v):
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def choice(*options):
    def parse(v):
        if v not in options:
            raise ValueError("one of " + ", ".join(map(str, options)))
        return v
    return parse


def shape(length=None, minimum=1):
    """A shape: an int or a list of ints (NNC writes '64,7,7'; a string like that is accepted too)."""
    def parse(v):
        if isinstance(v, str):
            try:
                v = [int(p) for p in v.split(",")]
            except ValueError:
                raise ValueError("a list of integers") from None
        if _is_int(v):
            v = [v]
        if not isinstance(v, list) or not v or not all(_is_int(p) and p >= minimum for p in v):
            raise ValueError(f"a list of integers >= {minimum}")
        if length is not None and len(v) != length:
            raise ValueError(f"a list of {length} integers")
        return tuple(v)
    return parse


def any_str(v):
    if not isinstance(v, str) or not v:
        raise ValueError("a non-empty string")
    return v


def _one_by_one(s, in_shapes):
    return 1, 1, (1,)


@dataclass(frozen=True)
class Param:
    """One parameter of a layer type, declared once.

    name: NNabla's and NNC's name (W, b, beta, gamma, mean, var, slope); NNC's properties of it are
        `<name>.Initializer`, `.InitializerMultiplier`, `.LRateMultiplier`.
    shape: (settings, input shapes) -> its shape.
    init: the default of its `<name>_init` setting, (NNC initializer, multiplier).
    fan: (settings, input shapes) -> (in maps, out maps, kernel) from which He/Glorot initializers
        take their scale, as NNC computes them.
    learns: False for a running statistic (BatchNormalization's mean, var): no solver, no lr_mult,
        LRateMultiplier 0 in an NNP.
    used: settings -> whether the layer has it with these settings (no b without with_bias).
    spectral_norm: for a W that can be spectrally normalised, the output axis of W (NNabla's
        `dim`); the layer then takes a `spectral_norm` setting.
    """

    name: str
    shape: Callable[[dict, list], Tuple[int, ...]]
    init: Tuple[str, float] = ("Constant", 0.0)
    fan: Callable[[dict, list], tuple] = _one_by_one
    learns: bool = True
    used: Callable[[dict], bool] = lambda s: True
    spectral_norm: Optional[int] = None

    @property
    def init_setting(self):
        """The setting of its initializer: W -> w_init, var -> var_init."""
        return f"{self.name.lower()}_init"

    def initializer(self, s, in_shapes):
        """NNabla's initializer for this parameter of a layer with settings `s` and `in_shapes`."""
        return initializers.make(s[self.init_setting], *self.fan(s, in_shapes))


def camel(key):
    """A setting's NNC property name: out_shape -> OutShape, n_inputs -> NInputs."""
    return "".join(part[:1].upper() + part[1:] for part in key.split("_"))


def snake(prop):
    """NNC's CamelCase -> snake_case: PadWidth -> pad_width, RSubScalar -> r_sub_scalar."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", prop).lower()


def f32(v):
    """A float32 from an NNP as the decimal it was written as (0.9, not 0.8999999761581421)."""
    return float(repr(np.float32(v)))


class LayerType:
    """Base of every layer type. Subclasses set the class attributes and override the methods."""

    type_name = ""
    settings = {}          # name -> Setting (with `<param>_init` and `spectral_norm` added from `parameters`)
    parameters = ()        # Param, one per parameter
    param_prefix = ""      # NNabla's PF name under the scope: '<scope>/affine/W' as NNC writes it
    nnc_properties = {}    # setting -> NNC property where it is not the setting in CamelCase
    nnp_import = False     # an NNP function of this type imports as this layer (settings by from_nnp)
    num_inputs = (1, 1)    # (min, max); max None = any number
    is_loss = False
    is_input = False
    doc = ""

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.parameters:  # each parameter's initializer setting, then spectral_norm, after the declared ones
            added = {p.init_setting: Setting(initializers.parse, p.init,
                                             doc=f"{p.name}'s initializer (NNC's {p.name}.Initializer)")
                     for p in cls.parameters}
            if any(p.spectral_norm is not None for p in cls.parameters):
                added["spectral_norm"] = Setting(bool_, False, doc="W / its largest singular value "
                                                                   "(nncgan.layers.palette)")
            cls.settings = {**cls.settings, **{k: v for k, v in added.items() if k not in cls.settings}}

    def out_shape(self, s, in_shapes):
        """Output shape (no batch axis) for input shapes; raise ShapeError when they don't fit."""
        return in_shapes[0]

    def build(self, s, xs, ctx):
        """Build on NNabla: `s` settings, `xs` input Variables, `ctx` (nncgan.builder._LayerContext):
        `ctx.param(name)` a parameter's Variable, `ctx.logit_of(i)`, `ctx.rng`, `ctx.comm`."""
        raise NotImplementedError

    def from_nnp(self, f, in_shapes, params, out_shape):
        """This layer's settings from `f`, an NNP function (nnabla_pb2.Function) of its type:
        in_shapes are its inputs' (data without the batch axis, parameters whole), params
        {parameter name: variable} of those it reads, out_shape its output's. ValueError(what was
        expected) when nncgan cannot express it. Read only where `nnp_import` is set."""
        return {}

    # ---- the parameters, as the builder, validation, export and import read them

    @property
    def params(self):
        """The parameters' names, e.g. ("W", "b")."""
        return tuple(p.name for p in self.parameters)

    @property
    def fixed_params(self):
        """The parameters that never learn (BatchNormalization's mean and var)."""
        return tuple(p.name for p in self.parameters if not p.learns)

    def param(self, pname):
        return next(p for p in self.parameters if p.name == pname)

    def param_used(self, s, pname):
        """Whether this layer, with these settings, has parameter `pname` (e.g. no b without bias)."""
        return self.param(pname).used(s)

    def param_shapes(self, s, in_shapes):
        """{name: shape} of the parameters a layer with settings `s` has."""
        return {p.name: tuple(p.shape(s, in_shapes)) for p in self.parameters if p.used(s)}

    def initializer(self, s, pname, in_shapes):
        return self.param(pname).initializer(s, in_shapes)

    # ---- NNC's property names

    def nnc_property(self, key):
        """The NNC property name of setting `key`."""
        return self.nnc_properties.get(key, camel(key))

    def setting_of_property(self, prop):
        """The setting NNC's property `prop` sets, or None."""
        named = {self.nnc_property(k): k for k in self.settings}
        if prop in named:
            return named[prop]
        key = snake(prop)  # as read before the names were declared: PadWidth -> pad_width
        return key if key in self.settings else None


def get(type_name) -> Optional[LayerType]:
    return REGISTRY.get(type_name)


def known_types():
    return sorted(REGISTRY)
