"""Loss layers. Each takes (prediction, target) and contributes weight x mean(loss) to its network.

The target is written like NNC's T input: `target: {generator: Constant, multiplier: 1}`,
`target: {dataset: y}` or `target: LayerName`; validation turns it into the second input (a
drawn or dataset target into an Input whose `target_of` names the loss). A loss is one
subclass of `_Loss` (is_loss; NNC's T.* properties and an NNP's weight, a MulScalar after it,
are read for every loss by the importers).
"""
import contextlib

import nnabla.functions as F

from .base import LayerType, Setting, ShapeError, register, float_, choice, snake


class _Loss(LayerType):
    is_loss = True
    num_inputs = (2, 2)
    nnp_import = True
    settings = {"weight": Setting(float_(), 1.0, doc="the loss's weight in its network's sum")}

    def out_shape(self, s, in_shapes):
        if in_shapes[0] != in_shapes[1]:
            raise ShapeError(f"a target shaped like the prediction {in_shapes[0]}, got {in_shapes[1]}")
        return in_shapes[0]


_FUSE = [True]


@contextlib.contextmanager
def as_nnc():
    """Build every BinaryCrossEntropy after a Sigmoid in NNC's form (the NNP export writes NNC's functions)."""
    _FUSE.append(False)
    try:
        yield
    finally:
        _FUSE.pop()


@register
class BinaryCrossEntropy(_Loss):
    type_name = "BinaryCrossEntropy"
    doc = "BCE of a probability against a target in [0, 1]; after a Sigmoid, `after_sigmoid` says how"
    settings = {**_Loss.settings, "after_sigmoid": Setting(
        choice("fused", "nnc"), "fused",
        doc="fused: NNabla's SigmoidCrossEntropy on the Sigmoid's input (finite, and a saturated "
            "discriminator keeps its gradient); nnc: Sigmoid then BinaryCrossEntropy as NNC computes them, whose log is clamped at "
            "float32's smallest normal (loss at most 87.34, gradient 0 once the sigmoid rounds to 0 or 1)")}

    def build(self, s, xs, ctx):
        logit = ctx.logit_of(0)
        if logit is not None and s["after_sigmoid"] == "fused" and _FUSE[-1]:
            # Not NNC's value bit for bit: the two round differently (up to ~1e-3 relative for |z| <= 10),
            # and where the sigmoid rounds to 0 or 1 NNC's loss is 87.34 with gradient 0; this one is
            # log(1 + e^z) with gradient sigmoid(z) there too.
            if ctx.constant_of(1) in (0.0, 1.0):
                return F.sigmoid_cross_entropy(logit, xs[1])
            # NNabla's SigmoidCrossEntropy reads its target as an integer label: a soft target (label
            # smoothing's 0.9, a dataset's probabilities) would become 0. The same loss for any target
            # in [0, 1]: softplus(z) - z t = -log_sigmoid(-z) - z t, finite, gradient sigmoid(z) - t.
            return -F.log_sigmoid(-logit) - logit * xs[1]
        return F.binary_cross_entropy(xs[0], xs[1])


def _elementwise_loss(name, fn, doc):
    cls = type(name, (_Loss,), {"type_name": name, "doc": doc,
                                "build": lambda self, s, xs, ctx: fn(xs[0], xs[1])})
    return register(cls)


SigmoidCrossEntropy = _elementwise_loss("SigmoidCrossEntropy", F.sigmoid_cross_entropy, "BCE on logits")
SquaredError = _elementwise_loss("SquaredError", F.squared_error, "(prediction - target)^2")
AbsoluteError = _elementwise_loss("AbsoluteError", F.absolute_error, "|prediction - target| (L1)")


@register
class SoftmaxCrossEntropy(_Loss):
    type_name = "SoftmaxCrossEntropy"
    doc = "cross-entropy of class scores against a class index of shape [1]"

    def from_nnp(self, f, in_shapes, params, out_shape):
        axis = getattr(f, f"{snake(self.type_name)}_param").axis
        if axis not in (0, 1):
            raise ValueError(f"axis 1 (classes on the first sample axis), got {axis}")
        return {}

    def out_shape(self, s, in_shapes):
        if in_shapes[1] != (1,) or len(in_shapes[0]) != 1:
            raise ShapeError(f"scores of shape (classes,) and a class index of shape (1,), "
                             f"got {in_shapes[0]} and {in_shapes[1]}")
        return (1,)

    def build(self, s, xs, ctx):
        return F.softmax_cross_entropy(xs[0], xs[1])


@register
class CategoricalCrossEntropy(SoftmaxCrossEntropy):
    type_name = "CategoricalCrossEntropy"
    doc = "cross-entropy of class probabilities (a Softmax's output) against a class index of shape [1]"

    def build(self, s, xs, ctx):
        return F.categorical_cross_entropy(xs[0], xs[1])
