"""`nncgan check`: each network's layers and shapes, shared scopes, and what each optimizer trains."""
from collections import defaultdict

from . import solvers
from .graph import schema
from .layers import get as get_layer_type
from .param_counts import layer_count, summary_lines


def _params(layer):
    lt = get_layer_type(layer.type)
    if not lt.params or not layer.in_shapes:
        return {}
    shapes = lt.param_shapes(layer.settings, layer.in_shapes)
    return {layer.param_path(p, lt.param_prefix): (p, s) for p, s in shapes.items()}


def _config_lines(config):
    """The other config settings (nncgan.graph.schema) that differ from their defaults, if any."""
    changed = [f"{k} {getattr(config, k)}" for k, s in schema.CONFIG.items()
               if k not in ("batch_size", "max_epoch", "seed") and getattr(config, k) != s.default]
    return [f"config {', '.join(changed)}"] if changed else []


def describe(graph):
    lines = [f"{graph.path}: graph '{graph.name}' is valid",
             f"dataset {graph.dataset.name}: " + ", ".join(f"{v} {s}" for v, s in graph.dataset.variables.items()),
             *([f"params " + ", ".join(f"{k}={v}" for k, v in graph.params.items())] if graph.params else []),
             f"batch {graph.config.batch_size}, max epoch {graph.config.max_epoch}, seed {graph.config.seed}",
             *_config_lines(graph.config), ""]
    users = defaultdict(set)
    for net in graph.networks.values():
        lines.append(f"network {net.name}  (layer, type, output shape, parameters, inputs)")
        for l in net.layers:
            lt = get_layer_type(l.type)
            mults = " ".join(f"{p}x{m:g}" for p, m in l.lr_mult.items())
            src = f" <- {', '.join(l.inputs)}" if l.inputs else ""
            scope = f"  scope {l.scope}" if lt.params and l.scope != l.name else ""
            n = layer_count(l)
            lines.append(f"  {l.name:<22} {l.type:<20} {str(l.shape):<16} {f'{n:,}' if n else '':>10}{src}"
                         + (f"  [{mults}]" if mults else "") + scope)
            for path in _params(l):
                users[l.scope].add(net.name)
        lines.append("")
    shared = {s: n for s, n in users.items() if len(n) > 1}
    lines.append("parameter scopes shared across networks:")
    for s, nets in sorted(shared.items()):
        lines.append(f"  {s:<22} {', '.join(sorted(nets))}")
    lines.append("")
    lines.append("optimizers, in the order they run each iteration:")
    for o in graph.optimizers:
        net = graph.networks[o.network]
        trained, frozen = {}, set()  # by path: a block used twice (CycleGAN's G_AB) is one set
        for l in net.layers:
            for path, (p, shape) in _params(l).items():
                m = l.lr_mult.get(p, 0.0)
                if m > 0:
                    trained.setdefault(path, f"{path} x{m:g}")
                else:
                    frozen.add(path)
        trained, frozen = list(trained.values()), len(frozen - {t.split(" ")[0] for t in trained})
        settings = ", ".join(f"{k} {v:g}" for k, v in solvers.filled(o.solver, o.solver_settings).items())
        lines.append(f"  {o.name}: network {o.network}, {o.solver}({settings}), "
                     f"update every {o.update_interval} iteration(s); trains {len(trained)} parameters, "
                     f"{frozen} frozen or running statistics")
        sched = [f"weight decay {o.weight_decay:g}"] if o.weight_decay else []
        if o.lr_scheduler:
            sched.append("learning rate " + ", ".join(f"{k} {v}" for k, v in o.lr_scheduler.items()))
        if o.warmup:
            sched.append(f"warm-up {o.warmup['length']} {o.warmup['unit']}(s)")
        if sched:
            lines.append(f"      {'; '.join(sched)}")
        losses = [f"{l.settings['weight']:g} x {l.name} ({l.type})" for l in net.losses]
        if losses:  # the network's loss: the weighted sum of its loss layers' means
            lines.append(f"      loss = {' + '.join(losses)}")
        lines += [f"      {t}" for t in trained]
    lines.append("")
    for e in graph.executors.values():
        aliases = [a for a, l in graph.networks[e.network].outputs.items() if l == e.output]
        shown = f"{aliases[0]} (layer {e.output})" if aliases else e.output
        lines.append(f"executor {e.name}: network {e.network}, output {shown}")
    lines += [""] + summary_lines(graph)
    return "\n".join(lines)


def check(path, sets=(), say=print):
    """`nncgan check`: a pipeline file's stages, or the graph (with its --set overrides, each said)
    described, once it is valid and a batch of it fits in memory."""
    from . import pipeline
    from .errors import RunError
    if pipeline.is_pipeline(path):
        if sets:
            raise RunError("--set applies to a graph; a pipeline's stages carry their own 'set:' lists")
        say(pipeline.check(path))
        return
    from .graph import overrides
    graph, applied = overrides.load(path, sets)
    for line in overrides.describe(applied):
        say(f"nncgan: {line}")
    from .train.loop import check_batch_fits
    check_batch_fits(graph)
    say(describe(graph))
