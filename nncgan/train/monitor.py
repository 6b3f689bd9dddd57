"""NNC's monitor pass: `nnabla_cli train` runs its monitors (train_error, valid_error) after the
last iteration of epochs 1-5 and of every `interval`-th epoch, before it saves.

A monitor is a forward pass of a network over a whole dataset split, batch by batch, in order
(NNabla's `_evaluate`: size // batch batches). Its error is only reported, but a network whose
BatchNormalization uses batch statistics moves the running mean and variance on every batch of
it, so the parameters NNC saves (the RuntimeGenerator's statistics) differ from a run without the
pass. `config.monitor` turns it on; `nncgan import` turns it on for an NNC project that has
monitors, so that the graph trains as NNC trains it.
"""
import numpy as np

from ..builder import build_network
from ..data.batches import iterator, to_batch

SPLITS = {"validation": "test", "training": "train"}   # NNC's dataset names -> nncgan's splits
FIRST_EPOCHS = 5   # nnabla_cli: `epoch % monitor_interval == 0 or epoch <= 5`
SHAPE = ("null (off) or {interval: N, monitors: {NAME: {network: NETWORK, dataset: validation|training}, ...}}")


def parse(v):
    """config.monitor -> (spec or None, [(key or None, problem)]); spec = {interval, monitors: {name: {network,
    dataset}}}, NNC's MonitorInterval and [Monitor_<i>] sections."""
    if v is None or v is False:
        return None, []
    if not isinstance(v, dict) or set(v) - {"interval", "monitors"} or not isinstance(v.get("monitors"), dict) \
            or not v["monitors"]:
        return None, [(None, f"config.monitor must be {SHAPE}, got {v!r}")]
    problems = []
    interval = v.get("interval", 10)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        problems.append(("interval", f"config.monitor.interval must be an integer >= 1, got {interval!r}"))
    monitors = {}
    for name, m in v["monitors"].items():
        if not isinstance(m, dict) or set(m) - {"network", "dataset"} or not isinstance(m.get("network"), str) \
                or m.get("dataset", "validation") not in SPLITS:
            problems.append(("monitors", f"config.monitor.monitors.{name} must be {{network: NETWORK, dataset: "
                                         f"validation|training}}, got {m!r}"))
            continue
        monitors[str(name)] = {"network": m["network"], "dataset": m.get("dataset", "validation")}
    return (None if problems else {"interval": interval, "monitors": monitors}), problems


def due(spec, epoch):
    return spec is not None and (epoch <= FIRST_EPOCHS or epoch % spec["interval"] == 0)


class MonitorPass:
    """The monitor networks, built on the training parameters (shared by scope), and their splits."""

    def __init__(self, graph, info, data_dir, log=print):
        self.spec, self.graph = graph.config.monitor, graph
        self.batch = graph.config.batch_size
        self.images = info.images
        self.arrays = {d: info.load(SPLITS[d], data_dir, log=log)
                       for d in dict.fromkeys(m["dataset"] for m in self.spec["monitors"].values())}
        self.nets = {}
        for m in self.spec["monitors"].values():
            if m["network"] not in self.nets:
                net = build_network(graph.networks[m["network"]], self.batch)
                self.nets[m["network"]] = (net, net.loss if net.loss is not None else _sink(net))

    def __call__(self, epoch):
        """Every monitor, in order, over its whole split; {monitor: mean loss (NNC's error)}.

        Its generators draw from an rng of (seed, epoch), so training's own draws are untouched
        and a resumed run passes exactly as an unbroken one."""
        rng = np.random.RandomState(self.graph.config.seed * 7919 + epoch)
        errors = {}
        for name, m in self.spec["monitors"].items():
            net, target = self.nets[m["network"]]
            di, n = iterator(self.arrays[m["dataset"]], self.batch, 0, shuffle=False)
            total = 0.0
            for _ in range(n):
                net.feed(to_batch(di.variables, di.next(), self.images), rng)
                target.forward(clear_no_need_grad=True, clear_buffer=net.loss is None)
                total += float(net.loss.d) if net.loss is not None else 0.0
            errors[name] = total / max(n, 1)
        return errors


def _sink(net):
    import nnabla.functions as F
    return F.sink(*[v for v in net.outputs.values() if v.parent is not None])
