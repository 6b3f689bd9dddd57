"""The layer registry: one class per layer type, registered by its NNC name.

A layer type declares its settings (typed, with defaults), its parameters, how its output
shape follows from its inputs' shapes, and how it builds on NNabla. Validation, `nncgan
check`, the builder and the docs all read the same declaration, so adding a layer type is
one class here and nothing else.
"""
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

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


class LayerType:
    """Base of every layer type. Subclasses set the class attributes and override the methods."""

    type_name = ""
    settings = {}          # name -> Setting
    params = ()            # parameter names, e.g. ("W", "b")
    fixed_params = ()      # parameters that never learn (BN mean/var)
    param_prefix = ""      # NNabla's PF name under the scope: '<scope>/affine/W' as NNC writes it
    num_inputs = (1, 1)    # (min, max); max None = any number
    is_loss = False
    is_input = False
    doc = ""

    def out_shape(self, s, in_shapes):
        """Output shape (no batch axis) for input shapes; raise ShapeError when they don't fit."""
        return in_shapes[0]

    def param_shapes(self, s, in_shapes):
        return {}

    def param_used(self, s, pname):
        """Whether this layer, with these settings, has parameter `pname` (e.g. no b without bias)."""
        return True

    def build(self, s, xs, P):
        """Build on NNabla: `s` settings, `xs` input Variables, `P(name)` the parameter Variable."""
        raise NotImplementedError


def get(type_name) -> Optional[LayerType]:
    return REGISTRY.get(type_name)


def known_types():
    return sorted(REGISTRY)
