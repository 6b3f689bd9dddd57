"""NNC's parameter initializers (W.Initializer / W.InitializerMultiplier) and NNabla's Range and
Orthogonal, on nnabla.initializer; every parameter of every layer type takes one (`<param>_init`)."""
import numpy as np
import nnabla.initializer as I

NAMES = (
    "Normal", "Uniform", "Constant", "Range", "Orthogonal",
    "NormalAffineHe", "NormalAffineHeForward", "NormalAffineHeBackward", "NormalAffineGlorot",
    "UniformAffineGlorot",
    "NormalConvolutionHe", "NormalConvolutionHeForward", "NormalConvolutionHeBackward",
    "NormalConvolutionGlorot", "UniformConvolutionGlorot",
)


def parse(v):
    """'NormalAffineGlorot' or {type: Normal, multiplier: 0.02} -> (name, multiplier)."""
    if isinstance(v, str):
        v = {"type": v}
    if not isinstance(v, dict) or set(v) - {"type", "multiplier"} or v.get("type") not in NAMES:
        raise ValueError("an initializer: one of " + ", ".join(NAMES)
                         + " (or {type: NAME, multiplier: M})")
    m = v.get("multiplier", 1.0)
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not np.isfinite(m):
        raise ValueError("an initializer multiplier that is a finite number")
    return (v["type"], float(m))


def make(spec, inmaps, outmaps, kernel=(1,)):
    """An NNabla initializer for `spec` = (name, multiplier), given fan-in/out as NNC computes them."""
    name, mult = spec
    k = int(np.prod(kernel))
    if name == "Constant":
        return I.ConstantInitializer(mult)
    if name == "Normal":
        return I.NormalInitializer(mult)
    if name == "Uniform":
        return I.UniformInitializer((-mult, mult))
    if name == "Range":  # 0, m, 2m, ... along the last axis (nnabla.utils.load's generator)
        return I.RangeInitializer(start=0, step=mult)
    if name == "Orthogonal":  # multiplier = gain
        return I.OrthogonalInitializer(mult)
    if name.startswith("Uniform"):  # *Glorot
        lim = I.calc_uniform_lim_glorot(inmaps, outmaps, kernel=(k,))
        return I.UniformInitializer((-lim * mult, lim * mult))
    if name.endswith("Glorot"):
        std = I.calc_normal_std_glorot(inmaps, outmaps, kernel=(k,))
    elif name.endswith("Backward"):
        std = I.calc_normal_std_he_backward(inmaps, outmaps, kernel=(k,))
    else:  # He, HeForward
        std = I.calc_normal_std_he_forward(inmaps, outmaps, kernel=(k,))
    return I.NormalInitializer(std * mult)
