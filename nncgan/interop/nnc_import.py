"""`nncgan import FILE -o graphs/NAME.yaml`: an NNC project or an NNP as an nncgan graph.

FILE is an NNC project (.sdcproj), an NNabla/NNC network definition (.nntxt, .prototxt) or an
NNP (.nnp: a zip holding one). Every network becomes a `networks:` entry, layer for layer, with
NNC's properties as snake_case settings, ParameterScope as `scope:`, the LRateMultipliers as
`lr_mult:`, Input generators, loss targets, optimizers, config and executors. The graph is
checked as `nncgan check` checks it before this returns; NNC's monitors become `config.monitor`;
what nncgan cannot express (an optimizer's iteration range, ...) is named, with its file, line and section, in a
warning and in the file's header.
"""
import math
from pathlib import Path

from ..errors import GraphError
from ..graph.parse import parse_graph
from ..graph.yamlio import dump
from ..layers import get as get_layer_type, initializers, known_types
from .. import solvers
from . import sdcproj
from .sdcproj import ImportError_
from .entries import compact_lr_mult, dataset_entry, in_build_order

# A layer property names its setting as the layer type declares it (LayerType.setting_of_property).
# Properties that say nothing about what is computed (NNC's editor, memory reuse) or that
# are read below by their own rule.
IGNORED = {"Name", "InPlace", "ParameterScope", "Dataset", "Generator", "GeneratorMultiplier",
           "T.Dataset", "T.Generator", "T.GeneratorMultiplier"}
PARAM_PROPS = ("File", "Initializer", "InitializerMultiplier", "LRateMultiplier")
# NNC solver parameter -> nncgan/NNabla solver setting
SOLVER_PARAM = {"Alpha": "alpha", "Beta1": "beta1", "Beta2": "beta2", "Epsilon": "eps", "Eps": "eps",
                "LearningRate": "lr", "Lr": "lr", "Momentum": "momentum", "Decay": "decay",
                "WeightDecay": "wd", "Wd": "wd"}


def import_file(path, out, name=None, log=print):
    """Convert `path` and write the graph to `out`; returns the validated Graph."""
    path, out = Path(path), Path(out)
    suffix = path.suffix.lower()
    if suffix == ".sdcproj":
        graph, notes = from_sdcproj(sdcproj.read(path))
    elif suffix in (".nntxt", ".prototxt", ".nnp"):
        from .nnp_import import from_nnp
        graph, notes = from_nnp(path)
    else:
        raise ImportError_(f"{path}: expected an NNC project (.sdcproj), a network definition "
                           f"(.nntxt, .prototxt) or an NNP (.nnp)")
    graph = {"nncgan": 1, "name": name or _identifier(path.stem), **graph}
    for note in notes:
        log(f"nncgan: warning: {note}")
    head = [f"# Imported from {path.name} by `nncgan import`."]
    head += [f"# Not imported: {n}" for n in notes]
    text = "\n".join(head) + "\n" + dump(graph)
    from .. import safeio
    safeio.write_text(out, text)  # a regular file only, never a device or folder at -o
    try:
        checked = parse_graph(out)
    except GraphError as e:
        raise GraphError([f"{out} was written from {path}, but it does not check:"] + e.problems) from None
    log(f"nncgan: {path} -> {out}: networks {', '.join(checked.networks)}; "
        f"{len(checked.optimizers)} optimizer(s); check it with `nncgan check {out}`")
    return checked


def _identifier(stem):
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in stem) or "imported"


def literal(text):
    """An NNC property value as YAML data: True/False, integers, numbers, '64,7,7' lists, else text."""
    if text in ("True", "False"):
        return text == "True"
    parts = text.split(",")
    try:
        ints = [int(p) for p in parts]
        return ints[0] if len(ints) == 1 else ints
    except ValueError:
        pass
    try:
        v = float(text)
    except ValueError:
        return text
    return v if math.isfinite(v) else text  # 'inf', or 400 digits: the checks then name the text






def solver_entry(name, params, where):
    """{type: ..., setting: value} for NNC's solver name and parameters."""
    known = {k.lower(): k for k in solvers.SOLVERS}
    stype = known.get(name.lower())
    if stype is None:
        raise ImportError_(f"{where}: expected a solver nncgan knows ({', '.join(solvers.SOLVERS)}), got {name!r}")
    entry = {"type": stype}
    allowed = solvers.SOLVERS[stype][1]
    for k, v in params.items():
        key = SOLVER_PARAM.get(k, k)
        if key not in allowed:
            raise ImportError_(f"{where}: solver {stype} has no parameter {k!r}; expected "
                               f"{', '.join(allowed)}")
        entry[key] = float(v)
    return entry




# ---------------------------------------------------------------- .sdcproj

def from_sdcproj(project):
    """(graph data, notes) of an NNC project."""
    notes = []
    nets = project.networks()
    networks = {n.name: _sdc_network(project, n) for n in nets}
    cfg = project.section("Config")
    config = {"batch_size": project.value(cfg, "BatchSize", int), "max_epoch": project.value(cfg, "MaxEpoch", int),
              "save_best": project.value(cfg, "SaveBest", int) != 0 if "SaveBest" in cfg.values else False}
    for key, (value, line) in cfg.values.items():
        if key not in ("MaxEpoch", "SaveBest", "BatchSize", "NumOptimizer", "NumMonitor", "NumExecutor",
                       "MonitorInterval") and (key, value) != ("TypeConfig", "Float"):
            notes.append(f"{project.path}:{line}: [Config] {key}={value}")
    optimizers = {}
    for s in project.numbered("Optimizer", "Config", "NumOptimizer"):
        oname = project.value(s, "Optimizer_Name")
        net = project.value(s, "Optimizer_NetworkName")
        if net not in networks:
            project.fail(s.values["Optimizer_NetworkName"][1], s.name, f"one of the networks {', '.join(networks)}")
        params = {project.value(s, f"SolverParameterName_{k}"): project.value(s, f"SolverParameter_{k}", float)
                  for k in range(project.value(s, "SolverParameterNum", int))}
        where = f"{project.path}:{s.line}: [{s.name}]"
        optimizers[oname] = {"network": net, "solver": solver_entry(project.value(s, "SolverName"), params, where),
                             "update_interval": project.value(s, "UpdateInterval", int, 1),
                             **_sdc_schedule(project, s, notes)}
    monitors = project.numbered("Monitor", "Config", "NumMonitor")
    if monitors:  # NNC runs them, and they move BatchNormalization's statistics: the graph runs them too
        found = {}
        for s in monitors:
            net, data = project.value(s, "Monitor_NetworkName"), s.get("Monitor_DatasetName", "Validation")
            if net not in networks:
                project.fail(s.values["Monitor_NetworkName"][1], s.name, f"one of the networks {', '.join(networks)}")
            if data not in ("Validation", "Training"):
                project.fail(s.values["Monitor_DatasetName"][1], s.name, f"dataset Validation or Training, got {data!r}")
            found[project.value(s, "Monitor_Name")] = {"network": net, "dataset": data.lower()}
        config["monitor"] = {"interval": project.value(cfg, "MonitorInterval", int)
                             if "MonitorInterval" in cfg.values else 10, "monitors": found}
    executors = {}
    for s in project.numbered("Executor", "Config", "NumExecutor"):
        net = project.value(s, "Executor_NetworkName")
        if net not in networks:
            project.fail(s.values["Executor_NetworkName"][1], s.name, f"one of the networks {', '.join(networks)}")
        executors[project.value(s, "Executor_Name")] = {"network": net, "output": _sink(networks[net], net, project, s)}
    sets = project.numbered("Dataset", "Dataset", "Num")
    if not sets:
        project.fail(1, None, "a [Dataset] section with at least one [Dataset_<i>]")
    desc = project.sections["Description"].get("Text", "") if "Description" in project.sections else ""
    try:
        dataset = dataset_entry(project.value(sets[0], "URI"), desc, Path(project.path).resolve().parent)
    except ImportError_ as e:
        raise ImportError_(f"{project.path}:{sets[0].values['URI'][1]}: [{sets[0].name}] {e}") from None
    graph = {"description": f"imported from the NNC project {Path(project.path).name}",
             "dataset": dataset, "config": config, "networks": networks,
             "optimizers": optimizers, "executors": executors}
    return graph, notes


# NNC's LearningRateUpdateIntervalUnit / LearningRateWarmupLengthUnit: 0 Epoch, 1 Iteration (the order of
# NNC's drop-down; the samples' 0 with interval 1 is NNC's "x multiplier every epoch" default).
SDC_UNIT = {"0": "epoch", "1": "iteration"}
OPTIMIZER_READ = {"Optimizer_Name", "Optimizer_NetworkName", "Optimizer_DatasetName", "UpdateInterval", "SolverName",
                  "SolverParameterNum", "WeightDecay", "LearningRateScheduler", "LearningRateMultiplier",
                  "LearningRateUpdateInterval", "LearningRateUpdateIntervalUnit", "LearningRatePower",
                  "LearningRateSteps", "LearningRateWarmupScheduler", "LearningRateWarmupLength",
                  "LearningRateWarmupLengthUnit", "RangeFrom", "RangeTo", "RangeUnit"}


def _sdc_schedule(project, s, notes):
    """weight_decay, lr_scheduler and warmup of an [Optimizer_<i>] section, in NNC's units."""
    out = {}
    num = lambda key, default, kind=float: project.value(s, key, kind) if key in s.values and s.get(key) != "" \
        else default
    wd = num("WeightDecay", 0.0)
    if wd:
        out["weight_decay"] = wd

    def unit(key):
        u = s.get(key, "0")
        if u not in SDC_UNIT:
            project.fail(s.values[key][1], s.name, f"{key} 0 (epoch) or 1 (iteration), got {u!r}")
        return SDC_UNIT[u]
    kind = s.get("LearningRateScheduler", "Exponential") or "Exponential"
    if kind == "Exponential":
        gamma = num("LearningRateMultiplier", 1.0)
        if gamma != 1.0:
            out["lr_scheduler"] = {"type": kind, "gamma": gamma, "interval": num("LearningRateUpdateInterval", 1, int),
                                   "unit": unit("LearningRateUpdateIntervalUnit")}
    elif kind == "Step":
        text = s.get("LearningRateSteps", "").replace(" ", "")
        if not all(x.isdigit() and len(x) < 19 for x in text.split(",") if x):
            project.fail(s.values["LearningRateSteps"][1], s.name, f"LearningRateSteps as whole numbers, got {text[:40]!r}")
        steps = [int(x) for x in text.split(",") if x]
        out["lr_scheduler"] = {"type": kind, "gamma": num("LearningRateMultiplier", 0.1), "steps": steps,
                               "unit": unit("LearningRateUpdateIntervalUnit")}
    elif kind == "Polynomial":
        out["lr_scheduler"] = {"type": kind, "power": num("LearningRatePower", 1.0)}
    elif kind == "Cosine":
        out["lr_scheduler"] = {"type": kind}
    elif kind != "None":
        project.fail(s.values["LearningRateScheduler"][1], s.name,
                     f"LearningRateScheduler Exponential, Step, Polynomial, Cosine or None, got {kind!r}")
    warm = s.get("LearningRateWarmupScheduler", "None")
    if warm == "Linear" and num("LearningRateWarmupLength", 0, int) > 0:
        out["warmup"] = {"type": "Linear", "length": num("LearningRateWarmupLength", 0, int),
                         "unit": unit("LearningRateWarmupLengthUnit")}
    elif warm not in ("None", "Linear", ""):
        project.fail(s.values["LearningRateWarmupScheduler"][1], s.name, f"LearningRateWarmupScheduler None or "
                                                                         f"Linear, got {warm!r}")
    if s.get("RangeFrom", "-1") != "-1" or s.get("RangeTo", "-1") != "-1":
        notes.append(f"{project.path}:{s.values.get('RangeFrom', s.values.get('RangeTo'))[1]}: [{s.name}] RangeFrom/RangeTo "
                     f"{s.get('RangeFrom')}..{s.get('RangeTo')} (nncgan runs every optimizer at every iteration)")
    for key, (value, line) in s.values.items():
        if key not in OPTIMIZER_READ and not key.startswith("SolverParameter"):
            notes.append(f"{project.path}:{line}: [{s.name}] {key}={value}")
    return out


def _sink(network, name, project, section):
    """The executor's output: the network's last layer that feeds nothing and is not a loss."""
    layers = network["layers"]
    used = {i for l in layers for i in l.get("inputs", [])}
    sinks = [l["name"] for l in layers if l["name"] not in used
             and not get_layer_type(l["type"]).is_loss and l["type"] != "Input"]
    if not sinks:
        project.fail(section.line, section.name, f"network '{name}' to have an output layer for the executor")
    return sinks[-1]


def _sdc_network(project, net):
    by_id = {}
    for l in net.layers:
        if l.id in by_id:
            project.fail(l.line, l.section, f"a layer ID used once in network '{net.name}'; "
                                            f"ID {l.id} is also [{by_id[l.id].section}]")
        by_id[l.id] = l
    names = {l.id: l.props.get("Name") or project.fail(l.line, l.section, "a Name property") for l in net.layers}
    incoming = {}
    for src, _, dst, pin, order in net.links:
        for end in (src, dst):
            if end not in by_id:
                project.fail(project.sections[f"{net.name}_Link_{order}"].line, f"{net.name}_Link_{order}",
                             f"a layer ID of network '{net.name}', got {end!r}")
        incoming.setdefault(dst, []).append((pin, order, names[src]))
    layers = [_sdc_layer(project, l, [n for _, _, n in sorted(incoming.get(l.id, []))]) for l in net.layers]
    return {"layers": in_build_order(layers)}


def _sdc_layer(project, l, inputs):
    lt = get_layer_type(l.type)
    if lt is None:
        from ..hints import did_you_mean as _suggest
        from ..layers.palette import grouped_types
        project.fail(l.line, l.section, f"a layer type nncgan knows, got {l.type!r}{_suggest(l.type, known_types())} "
                                        f"({'; '.join(grouped_types())})")
    name = l.props["Name"]
    out = {"name": name, "type": l.type}
    if inputs:
        out["inputs"] = inputs
    p = l.props

    def bad(what):
        project.fail(l.line, l.section, what)

    def number(prop, default):
        """A property that must be a finite number (a multiplier)."""
        v = literal(p.get(prop, default))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            bad(f"{prop} of {l.type} '{name}' to be a number, got {p.get(prop)!r}")
        return float(v)

    if lt.is_input:
        out["size"] = literal(p.get("Size", ""))
        gen = p.get("Generator", "None")
        if gen not in ("", "None"):
            out["generator"], out["multiplier"] = gen, number("GeneratorMultiplier", "1.0")
        else:
            out["dataset"] = p.get("Dataset") or bad("an Input with a Dataset variable or a Generator")
        return out
    if lt.is_loss:
        if len(inputs) == 1:
            gen = p.get("T.Generator", "None")
            if gen not in ("", "None"):
                out["target"] = {"generator": gen, "multiplier": number("T.GeneratorMultiplier", "1.0")}
            elif p.get("T.Dataset"):
                out["target"] = {"dataset": p["T.Dataset"]}
            else:
                bad(f"{l.type} '{name}' to have a target: a second input, T.Dataset or T.Generator")
        elif len(inputs) == 2:
            out["inputs"], out["target"] = inputs[:1], inputs[1]
    mults = {}
    for prop, value in p.items():
        pname, dot, attr = prop.partition(".")
        if dot and pname in lt.params and attr in PARAM_PROPS:
            param = lt.param(pname)
            if attr == "File" and value:
                bad(f"parameters initialised by their initializer ({prop}={value!r} reads a file nncgan does not)")
            if attr == "LRateMultiplier" and param.learns:
                mults[pname] = number(prop, "1.0")
            key = param.init_setting   # W -> w_init, var -> var_init
            if attr == "Initializer":
                mult = number(f"{pname}.InitializerMultiplier", "1.0")
                if value not in initializers.NAMES:
                    bad(f"an initializer nncgan knows for {prop} ({', '.join(initializers.NAMES)}), got {value!r}")
                if (value, mult) != lt.settings[key].default or pname == "W":
                    out[key] = {"type": value, "multiplier": mult}
            continue
        if prop in IGNORED:
            continue
        key = lt.setting_of_property(prop)
        if key is None:
            inits = {q.init_setting for q in lt.parameters}
            names = sorted(lt.nnc_property(k) for k in lt.settings if k not in inits)
            names += [f"{q.name}.{a}" for q in lt.parameters for a in PARAM_PROPS if a != "File"]
            bad(f"properties of {l.type} that nncgan reads ({', '.join(names)}), got {prop}={value!r}")
        if value.startswith("*"):  # NNC computes it (e.g. *ConvolutionPaddingSize from BorderMode)
            continue
        out[key] = literal(value)
    scope = p.get("ParameterScope", "*Name")
    if lt.params and scope not in ("*Name", name):
        out["scope"] = scope
    used = {k: v for k, v in mults.items() if lt.param_used(_settings_of(lt, out), k)}
    lr = compact_lr_mult(used)
    if lr is not None:
        out["lr_mult"] = lr
    return out


def _settings_of(lt, layer):
    """Just enough of a layer's settings for param_used (with_bias) before validation."""
    return {k: layer.get(k, s.default) for k, s in lt.settings.items()}
