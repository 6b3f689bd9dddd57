"""An NNabla/NNC network definition (.nntxt, .prototxt, or inside an .nnp) as graph data.

Each function becomes a layer named after the variable it outputs (NNC names both after the
layer); parameters named '<scope>/<affine|conv|deconv|bn>/<W|b|...>' give the layer's
ParameterScope; an optimizer's parameter_variable multipliers give `lr_mult`; variables no
function produces become Inputs, fed by the dataset or drawn by a generator as the optimizers
and executors say; a loss's target drawn by a Constant generator becomes `target:`. A function
imports as the layer type of its name that sets `nnp_import`, whose `from_nnp` reads its settings.
"""
import zipfile
from pathlib import Path

from google.protobuf import text_format
from nnabla.utils import nnabla_pb2

from .. import solvers
from ..layers import REGISTRY, get as get_layer_type, initializers
from ..layers.base import f32 as _f
from .entries import compact_lr_mult, dataset_entry, in_build_order
from .sdcproj import ImportError_, open_regular, read_regular

MAX_BYTES = 64 << 20


def importable():
    """The NNP function types that import as a layer: those whose layer type sets `nnp_import`."""
    return sorted(n for n, lt in REGISTRY.items() if lt.nnp_import)


def read_proto(path):
    """The NNablaProtoBuf of a .nntxt/.prototxt file or of the definition inside an .nnp."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".nnp":
            with open_regular(path, "an NNP") as f, zipfile.ZipFile(f) as z:
                names = [i for i in z.infolist() if i.filename.endswith((".nntxt", ".prototxt"))]
                if not names:
                    raise ImportError_(f"{path}: expected an NNP holding a .nntxt network definition; "
                                       f"it holds {', '.join(z.namelist()[:8]) or 'nothing'}")
                if names[0].file_size > MAX_BYTES:
                    raise ImportError_(f"{path}: {names[0].filename} is larger than {MAX_BYTES >> 20} MiB")
                data, label = z.read(names[0]), f"{path}:{names[0].filename}"
        else:
            data, label = read_regular(path, MAX_BYTES, "a network definition"), str(path)
    except zipfile.BadZipFile:
        raise ImportError_(f"{path}: expected an NNP (a zip file); it is not one") from None
    except OSError as e:
        raise ImportError_(f"cannot read {path}: {e.strerror}") from None
    try:
        return text_format.Parse(data.decode("utf-8"), nnabla_pb2.NNablaProtoBuf()), label
    except UnicodeDecodeError:
        raise ImportError_(f"{label}: expected protobuf text (an NNabla .nntxt), found binary data") from None
    except text_format.ParseError as e:  # its message starts with line:column
        raise ImportError_(f"{label}:{e}") from None


def from_nnp(path):
    """(graph data, notes) of an NNP or network definition file."""
    proto, label = read_proto(path)
    notes = []
    if not proto.network:
        raise ImportError_(f"{label}: expected at least one `network {{ ... }}`")
    feeds = _feeds(proto)
    mults = {}
    for o in proto.optimizer:
        m = mults.setdefault(o.network_name, {})
        for p in o.parameter_variable:
            m.setdefault(p.variable_name, p.learning_rate_multiplier)
    networks = {n.name: _network(n, label, feeds.get(n.name, ({}, {})), mults.get(n.name, {}))
                for n in proto.network}
    optimizers = {}
    for o in proto.optimizer:
        where = f"{label}: optimizer '{o.name}'"
        if o.network_name not in networks:
            raise ImportError_(f"{where}: expected one of the networks {', '.join(networks)}, got {o.network_name!r}")
        optimizers[o.name] = {"network": o.network_name, "solver": _solver(o.solver, where),
                              "update_interval": max(1, o.update_interval)}
        optimizers[o.name].update(_schedule(o.solver, where))
        if o.start_iter or o.end_iter:
            notes.append(f"{where}: start_iter {o.start_iter} / end_iter {o.end_iter} (nncgan runs every "
                         f"optimizer at every iteration)")
    executors = {}
    for e in proto.executor:
        if e.network_name not in networks or not e.output_variable:
            raise ImportError_(f"{label}: executor '{e.name}': expected a network of this file and an output variable")
        executors[e.name] = {"network": e.network_name, "output": e.output_variable[0].variable_name}
    first = proto.optimizer[0] if proto.optimizer else None
    net_proto = {n.name: n for n in proto.network}
    batch = net_proto[first.network_name].batch_size if first else proto.network[0].batch_size
    config = {"batch_size": batch or 64, "max_epoch": proto.training_config.max_epoch or 100,
              "save_best": bool(proto.training_config.save_best)}
    if proto.monitor:  # nnabla_cli runs them (moving BatchNormalization's statistics): the graph does too
        config["monitor"] = {"interval": proto.training_config.monitor_interval or 10, "monitors": {
            m.name: {"network": m.network_name,
                     "dataset": "training" if list(m.dataset_name) == ["Training"] else "validation"}
            for m in proto.monitor if m.network_name in networks}}
    datasets = {d.name: d for d in proto.dataset}
    used = [datasets[n] for n in (first.dataset_name if first else []) if n in datasets] or list(proto.dataset)
    if not used:
        raise ImportError_(f"{label}: expected a `dataset {{ uri: ... }}` the optimizers read")
    try:
        dataset = dataset_entry(used[0].uri, "", Path(path).resolve().parent)
    except ImportError_ as e:
        raise ImportError_(f"{label}: dataset '{used[0].name}': {e}") from None
    graph = {"description": f"imported from {Path(path).name}", "dataset": dataset, "config": config,
             "networks": networks, "optimizers": optimizers, "executors": executors}
    return graph, notes


def _feeds(proto):
    """network -> ({variable: dataset variable}, {variable: (generator, multiplier)}) from every
    optimizer, monitor and executor that runs it."""
    out = {}
    for msg in list(proto.optimizer) + list(proto.monitor) + list(proto.executor):
        data, gens = out.setdefault(msg.network_name, ({}, {}))
        for d in msg.data_variable:
            data.setdefault(d.variable_name, d.data_name)
        for g in msg.generator_variable:
            gens.setdefault(g.variable_name, (g.type, g.multiplier))
    return out


def _network(net, label, feeds, mults):
    data, gens = feeds
    shapes = {v.name: list(v.shape.dim) for v in net.variable}
    params = {v.name for v in net.variable if v.type == "Parameter"}
    inits = {v.name: (v.initializer.type, float(v.initializer.multiplier)) for v in net.variable
             if v.type == "Parameter" and v.initializer.type in initializers.NAMES}
    produced = {o for f in net.function for o in f.output}
    where = f"{label}: network '{net.name}'"

    def shape_of(name):
        if name not in shapes:
            raise ImportError_(f"{where}: variable '{name}' is used but not declared")
        return shapes[name] if name in params else shapes[name][1:]  # data: without the batch axis

    layers, weights, targets = [], {}, {}
    # SpectralNorm(W, u) feeding a layer's W is that layer's `spectral_norm: true` (its u is implied).
    sn = {f.output[0]: f.input[0] for f in net.function
          if f.type == "SpectralNorm" and len(f.input) == 2 and f.input[0] in params}
    for f in net.function:
        if f.output and f.output[0] in sn:
            continue
        if any(i in sn for i in f.input):
            copy = type(f)()  # a copy that reads W itself
            copy.CopyFrom(f)
            copy.input[:] = [sn.get(i, i) for i in f.input]
            f = copy
            layers.append(_layer(f, params, shape_of, f"{where}, function '{f.name}' ({f.type})"))
            layers[-1]["spectral_norm"] = True
            continue
        if f.type == "MulScalar" and f.input and any(l["name"] == f.input[0] and get_layer_type(l["type"]).is_loss
                                                     for l in layers):
            weights[f.input[0]] = (f.mul_scalar_param.val, f.output[0])
            continue
        layers.append(_layer(f, params, shape_of, f"{where}, function '{f.name}' ({f.type})"))
    # A weighted loss: the loss layer takes the weight (and the scaled variable's name, if referenced).
    for l in layers:
        if l["name"] in weights:
            l["weight"] = _f(weights[l["name"]][0])
    for l in layers:
        lt = get_layer_type(l["type"])
        if lt.is_loss and len(l["inputs"]) == 2:
            t = l["inputs"][1]
            if t not in produced and t in gens:
                kind, m = gens[t]
                l["target"], l["inputs"] = {"generator": kind, "multiplier": _f(m)}, l["inputs"][:1]
                targets[t] = l["name"]
            elif t not in produced and t in data:
                l["target"], l["inputs"] = {"dataset": data[t]}, l["inputs"][:1]
                targets[t] = l["name"]
            else:
                l["target"], l["inputs"] = t, l["inputs"][:1]
        scoped = l.pop("_params")
        for p, name in scoped.items():   # W -> w_init, var -> var_init: every initializer the file states
            key = lt.param(p).init_setting
            if name in inits:
                kind, m = inits[name]
                if (kind, _f(m)) != lt.settings[key].default or p == "W":
                    l[key] = {"type": kind, "multiplier": _f(m)}
        if scoped:
            m = {p: _f(mults.get(name, 1.0 if not mults else 0.0)) for p, name in scoped.items()
                 if lt.param(p).learns}
            lr = compact_lr_mult(m)
            if lr is not None:
                l["lr_mult"] = lr
    inputs = []
    for name in dict.fromkeys(i for f in net.function for i in f.input):
        if name in produced or name in params or name in targets:
            continue
        entry = {"name": name, "type": "Input", "size": shape_of(name)}
        if name in gens:
            entry["generator"], entry["multiplier"] = gens[name][0], _f(gens[name][1])
        elif name in data:
            entry["dataset"] = data[name]
        else:
            raise ImportError_(f"{where}: input variable '{name}' is fed by no dataset variable or "
                               f"generator in any optimizer, monitor or executor")
        inputs.append(entry)
    return {"layers": in_build_order(inputs + layers)}


def _layer(f, params, shape_of, where):
    lt = get_layer_type(f.type)
    if lt is None or not lt.nnp_import:
        raise ImportError_(f"{where}: expected a function nncgan has a layer for "
                           f"({', '.join(importable())})")
    if len(f.output) != 1:
        raise ImportError_(f"{where}: expected one output variable, got {len(f.output)}")
    data_in = [i for i in f.input if i not in params]
    param_in = [i for i in f.input if i in params]
    layer = {"name": f.output[0], "type": f.type, "inputs": data_in}
    scoped = {}
    for name in param_in:
        scope, _, rest = name.rpartition("/")
        scope, _, prefix = scope.rpartition("/")
        if not scope or prefix != lt.param_prefix or rest not in lt.params:
            raise ImportError_(f"{where}: expected parameters named '<scope>/{lt.param_prefix}/"
                               f"<{'|'.join(lt.params)}>', got '{name}'")
        scoped[rest] = name
        layer["scope"] = scope
    if layer.get("scope") == layer["name"]:
        del layer["scope"]
    layer["_params"] = scoped
    try:
        layer.update(lt.from_nnp(f, [shape_of(i) for i in f.input], scoped, shape_of(f.output[0])))
    except ValueError as e:
        raise ImportError_(f"{where}: {e}") from None
    return layer


def _solver(s, where):
    known = {k.lower(): k for k in solvers.SOLVERS}
    stype = known.get(s.type.lower())
    if stype is None:
        raise ImportError_(f"{where}: expected a solver nncgan knows ({', '.join(solvers.SOLVERS)}), got {s.type!r}")
    field = solvers.nnp_field(stype)
    msg = getattr(s, field)
    defaults = solvers.SOLVERS[stype][1]
    entry = {"type": stype}
    for key in defaults:
        entry[key] = _f(getattr(msg, key))
    return entry


def _schedule(s, where):
    """weight_decay, lr_scheduler and warmup of a Solver message, in iterations (what the NNP holds),
    read as nnabla.utils.load._create_optimizer reads them."""
    out = {}
    if s.weight_decay:
        out["weight_decay"] = _f(s.weight_decay)
    kind = s.lr_scheduler_type
    if kind == "Exponential":
        p = s.exponential_scheduler_param
        out["lr_scheduler"] = {"type": kind, "gamma": _f(p.gamma), "interval": max(1, p.iter_interval),
                               "unit": "iteration"}
    elif kind == "Step":
        p = s.step_scheduler_param
        out["lr_scheduler"] = {"type": kind, "gamma": _f(p.gamma), "steps": list(p.iter_steps), "unit": "iteration"}
    elif kind == "Polynomial":
        p = s.polynomial_scheduler_param
        out["lr_scheduler"] = {"type": kind, "power": _f(p.power), "max_iter": max(1, p.max_iter)}
    elif kind == "Cosine":
        out["lr_scheduler"] = {"type": kind, "max_iter": max(1, s.cosine_scheduler_param.max_iter)}
    elif kind == "" and s.lr_decay not in (0.0, 1.0):  # the old form: x lr_decay every lr_decay_interval
        out["lr_scheduler"] = {"type": "Exponential", "gamma": _f(s.lr_decay),
                               "interval": max(1, s.lr_decay_interval), "unit": "iteration"}
    elif kind not in ("",):
        raise ImportError_(f"{where}: learning-rate scheduler {kind!r}: nncgan has Exponential, Step, Polynomial "
                           f"and Cosine (nnabla_cli has no other either)")
    if s.lr_warmup_scheduler_type == "Linear" and s.linear_warmup_scheduler_param.warmup_iter > 0:
        out["warmup"] = {"type": "Linear", "length": s.linear_warmup_scheduler_param.warmup_iter,
                         "unit": "iteration"}
    return out
