"""A run -> an NNP file that NNabla (`nnabla_cli train`, `nnabla.utils.load`) and NNC read.

The file holds what NNC's own export holds: every network the optimizers and executors use
(traced from the very NNabla graphs nncgan trains, so the functions are the same), the
optimizers with their solvers, data/generator/loss variables and the parameter list with
each parameter's LRateMultiplier, monitors, the executor on the runtime network, the datasets
(NNC CSV files), the training config, and the last epoch's parameters.

Networks are traced by NNabla's own `nnabla.utils.save.create_proto`; the rest is written into
the protobuf directly, because `save()` can only write Constant generators and 0/1 multipliers.
"""
import csv
import json
import os
import tempfile
import zipfile
from pathlib import Path

import nnabla as nn
import nnabla.functions as F
from google.protobuf import text_format
from nnabla.utils import nnabla_pb2
from nnabla.utils.nnp_format import nnp_version
from nnabla.utils.save import create_proto

from .. import runs, schedules
from ..builder import build_network
from .. import safeio
from ..errors import RunError
from ..layers import cpu_kernels, get as get_layer_type, label_maps, losses as loss_layers
from ..train import checkpoint

TRAINING, VALIDATION = "Training", "Validation"   # NNC's dataset names
NETWORK_FILE = "network.nntxt"
PARAMETER_FILE = "parameter.protobuf"


def load_run_graph(run):
    """The graph a run trained (its graph.yaml, at the run's batch size), as `nncgan infer` reads it."""
    return runs.Run(run).graph(batch_size=True)


def export_nnp(run_dir, out_path, *, dataset_csv=None, validation_csv=None, batch_size=None,
               max_epoch=None, monitors=True, runtime_only=False, log=print):
    """Write the run's graph and last saved epoch as an NNP file; returns its path.

    dataset_csv: the NNC CSV file `nnabla_cli train` reads as the Training dataset (default: the
        graph's own `dataset: {csv: ...}`, else the bare name `<dataset>_training.csv` that
        `nncgan dataset export` writes, which `nnabla_cli` opens relative to its working folder). validation_csv: the Validation dataset (default: the
        training one). batch_size / max_epoch: default the graph's config.
    monitors: NNC's train_error/valid_error monitors (each is a forward pass over its dataset at
        every epoch's end in `nnabla_cli train`).
    runtime_only: only the executors' networks and parameters (what a converter to ONNX wants).
    Clears NNabla's global parameters (like `nncgan infer`) and leaves the run's in them.
    """
    run, out = Path(run_dir), Path(out_path)
    graph = load_run_graph(run)
    batch = batch_size or graph.config.batch_size
    folder = checkpoint.latest(run)
    train_uri, n_train = _dataset_uri(graph, dataset_csv, "training")
    valid_uri = _dataset_uri(graph, validation_csv, "test")[0] if validation_csv else train_uri
    iter_per_epoch = max(1, n_train // batch) if n_train else _iterations_per_epoch(folder, graph, batch)

    nn.clear_parameters()
    trained = [] if runtime_only else [o.network for o in graph.optimizers] + \
        [m["network"] for m in (graph.config.monitor or {}).get("monitors", {}).values()]
    used = list(dict.fromkeys(trained + [e.network for e in graph.executors.values()]))
    shown = {}  # network -> the layers its executors output
    for ex in graph.executors.values():
        shown.setdefault(ex.network, []).append(ex.output)
    traced = {name: _Traced(graph.networks[name], batch, shown.get(name, ())) for name in used}
    checkpoint.load(run)  # after building: load() checks the saved shapes against the parameters
    proto = create_proto({"networks": [t.content for t in traced.values()]}, variable_batch_size=True)
    for net in proto.network:
        traced[net.name].finish(net)

    proto.global_config.default_context.backends[:] = ["cpu:float"]
    proto.global_config.default_context.array_class = "CpuCachedArray"
    params = {path for t in traced.values() for path in t.params}
    if runtime_only:
        for ex in graph.executors.values():  # latents become inputs: a converter would freeze draws
            _executor(proto.executor.add(), ex, traced[ex.network], latents_as_data=True)
        _write_nnp(proto, out, params)
        log(f"nncgan: {out}: network {', '.join(traced)} with the parameters of {folder}")
        return out
    tc = proto.training_config
    tc.max_epoch = max_epoch or graph.config.max_epoch
    tc.iter_per_epoch = iter_per_epoch
    tc.save_best = graph.config.save_best
    variables = sorted(graph.dataset.variables)
    for name, uri, shuffle in ((TRAINING, train_uri, True), (VALIDATION, valid_uri, False)):
        d = proto.dataset.add()
        d.name, d.uri, d.batch_size, d.shuffle = name, uri, batch, shuffle
        d.no_image_normalization = False  # NNC's ImageNormalization: pixels / 255, as nncgan reads them
        d.variable.extend(variables)
    for opt in graph.optimizers:
        _optimizer(proto.optimizer.add(), opt, traced[opt.network], iter_per_epoch, graph.config.max_epoch)
    spec = graph.config.monitor
    if spec is not None:  # the graph's own monitors (NNC's, when imported), at its interval
        tc.monitor_interval = spec["interval"]
        pairs = [(name, traced[m["network"]] if m["network"] in traced else None,
                  TRAINING if m["dataset"] == "training" else VALIDATION) for name, m in spec["monitors"].items()]
    elif monitors and graph.optimizers:
        first = traced[graph.optimizers[0].network]
        pairs = [("train_error", first, TRAINING), ("valid_error", first, VALIDATION)]
    else:
        pairs = []
    for name, first, dataset in pairs:
        if first is not None:
            m = proto.monitor.add()
            m.name, m.network_name = name, first.name
            m.dataset_name.append(dataset)
            first.bind(m)
            for loss in first.losses:
                v = m.monitor_variable.add()
                v.type, v.variable_name = "Error", loss
    for ex in graph.executors.values():
        _executor(proto.executor.add(), ex, traced[ex.network])
    _write_nnp(proto, out, params)
    log(f"nncgan: {out}: networks {', '.join(traced)}; {len(graph.optimizers)} optimizer(s); "
        f"parameters of {folder}; datasets {train_uri}" + ("" if valid_uri == train_uri else f", {valid_uri}"))
    return out


class _Traced:
    """One network built on NNabla and what the NNP needs to know about it."""

    def __init__(self, net, batch, shown=()):
        self.name, self.net = net.name, net
        # The file holds NNC's own layers, not nncgan's faster formulations or kernels: Sigmoid + BinaryCrossEntropy.
        with label_maps.disabled(), cpu_kernels.disabled(), loss_layers.as_nnc():
            built = build_network(net, batch)
        alias = {v: k for k, v in net.outputs.items()}
        self.var_name = {layer.name: alias.get(layer.name, layer.name) for layer in net.layers}
        names = {self.var_name[n]: v for n, v in built.outputs.items() if n in self.var_name}
        self.losses, outputs = [], {}
        for lname, (weight, y) in built.loss_terms.items():
            if weight != 1.0:  # nnabla_cli back-propagates mean(loss variable): scale the variable
                y = F.mul_scalar(y, weight)
                lname = f"{lname}_weighted"
                names[lname] = y
            self.losses.append(lname)
            outputs[lname] = y
        for alias_name, lname in net.outputs.items():
            outputs[alias_name] = built.outputs[lname]
        for lname in shown:
            outputs.setdefault(self.var_name[lname], built.outputs[lname])
        self.content = {"name": net.name, "batch_size": batch, "outputs": outputs, "names": names}
        self.data = {}       # network variable -> dataset variable
        self.generators = []  # (network variable, NNC generator, multiplier)
        for layer in net.layers:
            if get_layer_type(layer.type).is_input:
                s = layer.settings
                if s["generator"]:
                    self.generators.append((self.var_name[layer.name], s["generator"], s["multiplier"]))
                else:
                    self.data[self.var_name[layer.name]] = s["dataset"]
        self.params = _parameters(net)  # path -> (multiplier, initializer spec or None)

    def finish(self, proto_net):
        """Name functions after the layers that made them, as NNC does; parameter initializers."""
        layer_vars = set(self.var_name.values())
        for f in proto_net.function:
            if f.output and f.output[0] in layer_vars:
                f.name = f.output[0]
        for v in proto_net.variable:
            spec = self.params.get(v.name, (0, None))[1]
            if v.type == "Parameter" and spec:
                v.initializer.type, v.initializer.multiplier = spec
        self.in_network = {v.name for v in proto_net.variable}

    def bind(self, msg, latents_as_data=False):
        """The data and generator variables of an optimizer, monitor or executor message."""
        data = dict(self.data)
        if latents_as_data:
            data.update({var: var for var, _, _ in self.generators})
        for var, data in data.items():
            if var in self.in_network:
                d = msg.data_variable.add()
                d.variable_name, d.data_name = var, data
        for var, kind, mult in self.generators:
            if var in self.in_network and not latents_as_data:
                g = msg.generator_variable.add()
                g.variable_name, g.type, g.multiplier = var, kind, mult


def _parameters(net):
    """Each parameter of a network: its LRateMultiplier there (0 for one that never learns) and
    its initializer as NNC names it, as the layer type declares them."""
    out = {}
    for layer in net.layers:
        lt = get_layer_type(layer.type)
        for param in lt.parameters:
            if not param.used(layer.settings):
                continue
            p = param.name
            path = layer.param_path(p, lt.param_prefix)
            mult = float(layer.lr_mult.get(p, 0.0)) if param.learns else 0.0
            init = layer.settings[param.init_setting]
            if param.spectral_norm is not None and layer.settings["spectral_norm"]:  # its vector u: fixed, Normal
                out.setdefault(layer.param_path("u", lt.param_prefix), (0.0, ("Normal", 1.0)))
            old = out.get(path, (0.0, init))
            out[path] = (max(old[0], mult), old[1] or init)
    return out


def _optimizer(o, opt, t, iter_per_epoch, max_epoch):
    o.name, o.network_name, o.update_interval = opt.name, opt.network, opt.update_interval
    o.dataset_name.append(TRAINING)
    s = o.solver
    s.type = opt.solver
    from .. import solvers
    param = getattr(s, solvers.nnp_field(opt.solver))
    for key, value in solvers.filled(opt.solver, opt.solver_settings).items():
        setattr(param, key, value)
    s.weight_decay, s.lr_decay, s.lr_decay_interval = opt.weight_decay, 1.0, iter_per_epoch
    # The schedule in iterations, as NNC writes it (epochs x iter_per_epoch), training's max_epoch.
    kind, params, warm = schedules.nnp_fields(opt.lr_scheduler, opt.warmup, iter_per_epoch, max_epoch)
    if kind:
        s.lr_scheduler_type = kind
        msg = getattr(s, f"{kind.lower()}_scheduler_param")
        for k, v in params.items():
            if isinstance(v, list):
                getattr(msg, k).extend(v)
            else:
                setattr(msg, k, v)
    if warm:
        s.lr_warmup_scheduler_type = "Linear"
        s.linear_warmup_scheduler_param.warmup_iter = warm
    t.bind(o)
    for loss in t.losses:
        o.loss_variable.add().variable_name = loss
    for path, (mult, _) in t.params.items():
        p = o.parameter_variable.add()
        p.variable_name, p.learning_rate_multiplier = path, mult


def _executor(e, ex, t, latents_as_data=False):
    e.name, e.network_name = ex.name, ex.network
    e.num_evaluations, e.repeat_evaluation_type, e.need_back_propagation = 1, "mean", False
    t.bind(e, latents_as_data)
    out = e.output_variable.add()
    out.variable_name = out.data_name = t.var_name[ex.output]
    for path in t.params:
        e.parameter_variable.add().variable_name = path


def _dataset_uri(graph, csv_path, split):
    """(URI, number of rows or None) of the CSV file for one split."""
    spec = graph.dataset
    if csv_path is None and spec.kind == "csv" and split == "training":
        csv_path = spec.path
    if csv_path is None:  # NNC's file name, as `nncgan dataset export` writes it
        return f"{spec.kind.replace('-', '_')}_{split}.csv", None
    path = Path(csv_path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = sum(1 for row in csv.reader(f) if row) - 1
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RunError(f"cannot read the dataset CSV {path}: {getattr(e, 'strerror', None) or e}") from None
    if rows < 1:
        raise RunError(f"{path} holds no data rows (an NNC dataset CSV: a header, then one row per sample)")
    return str(path.resolve()), rows


def _iterations_per_epoch(folder, graph, batch):
    """Without a CSV to count: the iterations per epoch the run itself made (at its batch size)."""
    try:
        state = json.loads(safeio.read_text(folder / checkpoint.STATE, limit=64 << 20))
        per_epoch = int(state["iteration"]) // int(state["epoch"])
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError):
        return 1
    return max(1, per_epoch * graph.config.batch_size // batch)


def _write_nnp(proto, out, names):
    """The NNP zip as NNabla writes it: version, network definition, parameters; atomically."""
    with safeio.atomic_path(out) as part:
        with tempfile.TemporaryDirectory(dir=part.parent, prefix=".nncgan-nnp-") as tmp:
            params = os.path.join(tmp, PARAMETER_FILE)
            nn.save_parameters(params, {k: v for k, v in nn.get_parameters(grad_only=False).items()
                                        if k in names})
            with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("nnp_version.txt", f"{nnp_version()}\n")
                z.writestr(NETWORK_FILE, text_format.MessageToString(proto))
                z.write(params, PARAMETER_FILE)


def read_nnp_proto(path):
    """The NNablaProtoBuf of an NNP file's network definition (for inspection and tests)."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith((".nntxt", ".prototxt")))
        return text_format.Parse(z.read(name).decode("utf-8"), nnabla_pb2.NNablaProtoBuf())
