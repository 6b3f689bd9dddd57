"""Loss layers. Each takes (prediction, target) and contributes weight x mean(loss) to its network.

The target is written like NNC's T input: `target: {generator: Constant, multiplier: 1}`,
`target: {dataset: y}` or `target: LayerName`; validation turns it into the second input.
"""
import nnabla.functions as F

from .base import LayerType, Setting, ShapeError, register, float_


class _Loss(LayerType):
    is_loss = True
    num_inputs = (2, 2)
    settings = {"weight": Setting(float_(), 1.0, doc="the loss's weight in its network's sum")}

    def out_shape(self, s, in_shapes):
        if in_shapes[0] != in_shapes[1]:
            raise ShapeError(f"a target shaped like the prediction {in_shapes[0]}, got {in_shapes[1]}")
        return in_shapes[0]


@register
class BinaryCrossEntropy(_Loss):
    type_name = "BinaryCrossEntropy"
    doc = "BCE of a probability against a target in [0, 1]; fused with a Sigmoid that feeds it"

    def build(self, s, xs, ctx):
        logit = ctx.logit_of(0)
        if logit is not None:
            # Same value as BCE(sigmoid(z), t) but never log(0): a confident discriminator stays finite.
            return F.sigmoid_cross_entropy(logit, xs[1])
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

    def out_shape(self, s, in_shapes):
        if in_shapes[1] != (1,) or len(in_shapes[0]) != 1:
            raise ShapeError(f"scores of shape (classes,) and a class index of shape (1,), "
                             f"got {in_shapes[0]} and {in_shapes[1]}")
        return (1,)

    def build(self, s, xs, ctx):
        return F.softmax_cross_entropy(xs[0], xs[1])
