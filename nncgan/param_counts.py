"""Parameter counts, as Keras' summary() and NNC's CostParameter give them: per layer, per network
(trainable by that network's optimizer, or frozen there), and for the whole graph (each shared
ParameterScope counted once)."""
from dataclasses import dataclass, field
from typing import Dict

from .layers import get as get_layer_type


def _size(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def layer_params(layer):
    """{parameter path: (parameter name, shape)} of one layer (none for a layer without shapes)."""
    lt = get_layer_type(layer.type)
    if lt is None or not lt.params or not layer.in_shapes:
        return {}
    shapes = lt.param_shapes(layer.settings, layer.in_shapes)
    return {layer.param_path(p, lt.param_prefix): (p, s) for p, s in shapes.items()}


def layer_count(layer):
    return sum(_size(s) for _, s in layer_params(layer).values())


@dataclass
class NetworkCount:
    trainable: int = 0
    frozen: int = 0      # lr_mult 0 here, or running statistics (BatchNormalization's mean and variance)

    @property
    def total(self):
        return self.trainable + self.frozen


@dataclass
class GraphCount:
    networks: Dict[str, NetworkCount] = field(default_factory=dict)
    total: int = 0       # every parameter of the graph once
    trained: int = 0     # those some optimizer's network trains


def count(graph):
    out, sizes, trained = GraphCount(), {}, set()
    optimized = {o.network for o in graph.optimizers}
    for net in graph.networks.values():
        seen, c = {}, NetworkCount()
        for l in net.layers:
            for path, (p, shape) in layer_params(l).items():
                n = _size(shape)
                sizes[path] = n
                train = l.lr_mult.get(p, 0.0) > 0
                seen[path] = seen.get(path, False) or train  # a block used twice is one set
        for path, train in seen.items():
            if train:
                c.trainable += sizes[path]
                if net.name in optimized:
                    trained.add(path)
            else:
                c.frozen += sizes[path]
        out.networks[net.name] = c
    out.total = sum(sizes.values())
    out.trained = sum(sizes[p] for p in trained)
    return out


def summary_lines(graph):
    """The lines `nncgan check` ends with."""
    c = count(graph)
    width = max([len(n) for n in c.networks] + [7])
    lines = ["parameters (each shared scope counted once in the total):",
             f"  {'network':<{width}} {'total':>12} {'trainable':>12} {'frozen':>12}"]
    for name, n in c.networks.items():
        lines.append(f"  {name:<{width}} {n.total:>12,} {n.trainable:>12,} {n.frozen:>12,}")
    lines.append(f"  {'graph':<{width}} {c.total:>12,} {c.trained:>12,} {c.total - c.trained:>12,}"
                 "   (trainable: trained by an optimizer's network)")
    return lines
