"""`nncgan render`: the validated graph written back as YAML, with nothing left implicit.

Blocks are expanded (each network lists its layers, prefixed names and all), every layer
names its inputs, its scope, every setting (defaults filled) and the multiplier of each
learnable parameter in that network; every solver setting is written. The result is a graph
`nncgan check` accepts and that trains to the same parameters as the original: layers keep
the order the builder creates them in, so parameters are initialised from the same draws.
"""
from ..layers import get as get_layer_type
from ..layers import initializers
from .yamlio import dump
from .. import solvers
from . import schema


def _value(spec, v):
    if v is None:
        return None
    if spec.parse is initializers.parse:   # (name, multiplier), as the graph writes it
        return {"type": v[0], "multiplier": v[1]}
    if isinstance(v, tuple):
        return list(v)
    return v


def _target(layer):
    """The loss target as it was written: the Input validation made of it back to `target:`."""
    s = layer.settings
    if s.get("dataset") is not None:
        return {"dataset": s["dataset"]}
    return {"generator": s["generator"], "multiplier": s["multiplier"]}


def _layer(layer, targets):
    lt = get_layer_type(layer.type)
    out = {"name": layer.name, "type": layer.type}
    inputs = list(layer.inputs)
    target = None
    if lt.is_loss and len(inputs) == 2 and inputs[1] in targets:
        target = _target(targets[inputs[1]])
        inputs = inputs[:1]
    if not lt.is_input:
        out["inputs"] = inputs
    if target is not None:
        out["target"] = target
    elif lt.is_loss:
        out["target"] = layer.inputs[1]
        out["inputs"] = inputs[:1]
    if lt.params:
        out["scope"] = layer.scope
        out["lr_mult"] = dict(layer.lr_mult)
    for key, spec in lt.settings.items():
        out[key] = _value(spec, layer.settings.get(key))
    return out


def _optimizer_value(o, key):
    """An optimizer's `key` as the graph writes it (the schema's keys), every solver setting filled."""
    if key == "solver":
        return {"type": o.solver, **solvers.filled(o.solver, o.solver_settings)}
    return getattr(o, key)


def resolved(graph):
    """The graph as plain data, every block, default and multiplier explicit."""
    cfg = graph.config
    data = {"nncgan": 1, "name": graph.name}
    data["dataset"] = graph.dataset.mapping()  # as written: kind, path, options, derive, dir
    data["config"] = {k: getattr(cfg, k) for k in schema.CONFIG}
    networks = {}
    for net in graph.networks.values():
        # Loss targets became Inputs (`target_of` their loss) in validation; they are written as `target:`.
        targets = {l.name: l for l in net.layers if l.target_of is not None}
        entry = {"layers": [_layer(l, targets) for l in net.layers if l.name not in targets]}
        if net.outputs:
            entry["outputs"] = dict(net.outputs)
        networks[net.name] = entry
    data["networks"] = networks
    data["optimizers"] = {o.name: {k: _optimizer_value(o, k) for k in schema.OPTIMIZER} for o in graph.optimizers}
    data["executors"] = {e.name: {"network": e.network, "output": e.output}
                         for e in graph.executors.values()}
    return data


def render(graph, applied=()):
    """YAML text of the resolved graph, headed by where it came from and the overrides applied."""
    head = [f"# {graph.path}, resolved by `nncgan render`: blocks expanded, defaults filled,",
            "# the multiplier of every parameter in every network written out."]
    head += [f"# override {p}: {old!r} -> {new!r}" for p, old, new in applied]
    return "\n".join(head) + "\n" + dump(resolved(graph))
