"""Datasets derived from a built-in one: the pairs and domains image-to-image GANs learn from.

``dataset: {name: BASE, derive: {type: TYPE, ...}}`` with BASE a built-in dataset (mnist,
fashion-mnist). Each derivation maps the base's images ``x`` (uint8, (1, 28, 28)) and labels
``y`` to new variables, for the train and the test split alike:

- ``downscale`` (``factor: 2``, which must divide 28): ``x`` the original, ``x_low`` its
  area average (every factor x factor block's mean, exact: kept as float pixel values),
  ``x_up`` = ``x_low`` resized back to 28x28 (bicubic, the classic SRCNN input), ``y``.
- ``edges`` (``threshold: 0.25``): ``a`` the item's edge map, 255 where the Sobel gradient
  magnitude is above ``threshold`` times the image's largest, else 0 (white outlines on
  black, like edges2shoes' line drawings); ``b`` the item itself; ``y``. The same variables
  as a paired image folder (``A/``, ``B/``), so one pix2pix graph trains on either.
- ``strokes``: ``a`` thin digits (grey erosion by a 2x2 square), ``b`` thick digits (grey
  dilation by a 3x3 square), ``y_a``/``y_b`` their labels. In the train split ``a`` comes
  from the first half of the samples and ``b`` from the second, so no digit is seen in both
  domains, and ``b`` is drawn in an order of its own each epoch (unpaired, like ``trainA/``
  and ``trainB/``). The test split gives both versions of every test image (``y_a`` = ``y_b``),
  so a translation can be scored against the true other version and its label.
- ``stroke_widths``: ``x`` every digit at one of the three widths by its index (thin, as drawn,
  thick: strokes' ``a``, the base, strokes' ``b``), ``y``; train and test split alike. What a
  classifier reading both of CycleGAN's domains trains on (bench/zoo.py): one trained on plain
  MNIST reads only nine thin test digits in ten.

A sample limit (--limit-samples N, nncgan.data.spec) takes the base's first N before deriving.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError

SIDE = 28  # the built-in datasets' images are 28 x 28


def _int_option(spec, key, default, least):
    v = spec.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < least:
        raise DataError(f"derive.{key} must be an integer >= {least}, got {v!r}")
    return v


def _float_option(spec, key, default, lo, hi):
    v = spec.get(key, default)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo < v < hi:
        raise DataError(f"derive.{key} must be a number between {lo} and {hi}, got {v!r}")
    return float(v)


# ----------------------------------------------------------------------------- the transforms


def area_downscale(images, factor):
    """(N, C, H, W) -> (N, C, H/f, W/f): the mean of each f x f block, as float32."""
    n, c, h, w = images.shape
    blocks = images.reshape(n, c, h // factor, factor, w // factor, factor).astype(np.float32)
    return blocks.mean(axis=(3, 5))


def bicubic_upscale(images, size):
    """(N, 1, h, w) float pixel values -> (N, 1, size, size) uint8, resized by Pillow's bicubic."""
    from PIL import Image
    out = np.empty((len(images), 1, size, size), np.uint8)
    for i, im in enumerate(images[:, 0]):
        up = Image.fromarray(im.astype(np.float32), mode="F").resize((size, size), Image.BICUBIC)
        out[i, 0] = np.clip(np.rint(np.asarray(up)), 0, 255)
    return out


_SOBEL = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


def edge_maps(images, threshold):
    """(N, 1, H, W) uint8 -> uint8 edge maps: 255 where the Sobel magnitude > threshold * the image's max."""
    from scipy import ndimage
    x = images[:, 0].astype(np.float32)
    # ndimage.sobel would also smooth across the batch axis: the 3x3 kernels, one image at a time
    gx = ndimage.correlate(x, _SOBEL[None], mode="constant")
    gy = ndimage.correlate(x, _SOBEL.T[None], mode="constant")
    mag = np.hypot(gx, gy)
    top = mag.reshape(len(x), -1).max(axis=1)[:, None, None]
    edges = (mag > threshold * np.maximum(top, 1e-6)) & (top > 0)
    return (edges.astype(np.uint8) * 255)[:, None]


def thin_strokes(images):
    """Grey erosion by a 2x2 square: each stroke loses about a pixel across (MNIST strokes are
    2-3 pixels wide; a 3x3 cross would erase one digit in six)."""
    from scipy import ndimage
    return ndimage.grey_erosion(images, size=(1, 1, 2, 2))


def thick_strokes(images):
    """Grey dilation by a 3x3 square: each stroke gains about a pixel on every side."""
    from scipy import ndimage
    return ndimage.grey_dilation(images, size=(1, 1, 3, 3))


# ---------------------------------------------------------------------------- the derivations


class Derivation:
    """One `derive: {type: ...}`: its variables (shapes), which are images, and how to make them."""

    type_name = ""
    options = ()
    independent = ()

    def __init__(self, spec):
        self.spec = spec

    def key(self):
        return self.type_name + "".join(f",{k}={getattr(self, k)}" for k in self.options)

    def variables(self):
        raise NotImplementedError

    images = ()

    def derive(self, x, y, split):
        raise NotImplementedError


class Downscale(Derivation):
    type_name = "downscale"
    options = ("factor",)
    images = ("x", "x_low", "x_up")

    def __init__(self, spec):
        super().__init__(spec)
        self.factor = _int_option(spec, "factor", 2, 2)
        if SIDE % self.factor:
            raise DataError(f"derive.factor must divide the image side {SIDE} (2, 4, 7, 14), got {self.factor}")

    def variables(self):
        low = SIDE // self.factor
        return {"x": (1, SIDE, SIDE), "x_low": (1, low, low), "x_up": (1, SIDE, SIDE), "y": (1,)}

    def derive(self, x, y, split):
        low = area_downscale(x, self.factor)  # float pixel values 0..255: scaled by 1/255 like uint8
        return {"x": x, "x_low": low, "x_up": bicubic_upscale(low, SIDE), "y": y}


class Edges(Derivation):
    type_name = "edges"
    options = ("threshold",)
    images = ("a", "b")

    def __init__(self, spec):
        super().__init__(spec)
        self.threshold = _float_option(spec, "threshold", 0.25, 0.0, 1.0)

    def variables(self):
        return {"a": (1, SIDE, SIDE), "b": (1, SIDE, SIDE), "y": (1,)}

    def derive(self, x, y, split):
        return {"a": edge_maps(x, self.threshold), "b": x, "y": y}


class Strokes(Derivation):
    type_name = "strokes"
    images = ("a", "b")
    independent = ("b", "y_b")

    def variables(self):
        return {"a": (1, SIDE, SIDE), "y_a": (1,), "b": (1, SIDE, SIDE), "y_b": (1,)}

    def derive(self, x, y, split):
        if split == "train":  # disjoint halves: A from the first, B from the second
            half = len(x) // 2
            if half == 0:
                raise DataError(f"derive: strokes needs at least 2 samples to split into A and B, got {len(x)}")
            xa, ya, xb, yb = x[:half], y[:half], x[half:2 * half], y[half:2 * half]
        else:
            xa, ya, xb, yb = x, y, x, y
        return {"a": thin_strokes(xa), "y_a": ya, "b": thick_strokes(xb), "y_b": yb}


class StrokeWidths(Derivation):
    type_name = "stroke_widths"
    images = ("x",)

    def variables(self):
        return {"x": (1, SIDE, SIDE), "y": (1,)}

    def derive(self, x, y, split):
        out = x.copy()
        out[0::3] = thin_strokes(x[0::3])
        out[2::3] = thick_strokes(x[2::3])
        return {"x": out, "y": y}


DERIVATIONS = {d.type_name: d for d in (Downscale, Edges, Strokes, StrokeWidths)}


def derivation(spec):
    """The Derivation a `derive:` mapping asks for; DataError (naming what is wrong) otherwise."""
    if not isinstance(spec, dict):
        raise DataError(f"derive must be a mapping like {{type: downscale, factor: 2}}, got {spec!r}")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in DERIVATIONS:
        raise DataError(f"derive.type must be one of {', '.join(DERIVATIONS)}, got {kind!r}")
    cls = DERIVATIONS[kind]
    extra = sorted(set(spec) - {"type"} - set(cls.options), key=str)
    if extra:
        known = ", ".join(cls.options) or "none"
        raise DataError(f"derive: unknown key '{extra[0]}' for type {kind} (its options: {known})")
    return cls(spec)


def describe(base, spec):
    """DatasetInfo of the built-in dataset described by `base` (a DatasetInfo) derived by `spec`."""
    from .kind import DatasetInfo
    d = derivation(spec)
    doc = f"{base.name} derived by {d.key()}: " + ", ".join(f"{v} {s}" for v, s in d.variables().items())
    return DatasetInfo(f"{base.name}+{d.key()}", d.variables(), base.classes, d.images, doc)


def derive(base, spec, arrays, split, log=print):
    """The base's loaded split {x, y} turned into the derived set's variables (samples.Arrays)."""
    from .samples import Arrays
    d = derivation(spec)
    out = d.derive(np.asarray(arrays["x"]), np.asarray(arrays["y"]), split)
    log(f"{base}+{d.key()}: {len(next(iter(out.values())))} samples ({split}), derived from {base}")
    return Arrays(out, independent=d.independent)
