"""The validated graph: what the builder and trainer read. Built only by `graph.parse`."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..data.spec import DatasetSpec  # noqa: F401  (the graph's `dataset:`, made by the parser)


@dataclass
class Where:
    """Where something was written, for error messages: file, line, network, layer, block."""

    file: str
    line: int
    network: Optional[str] = None
    layer: Optional[str] = None
    block: Optional[str] = None
    used_at: Optional[int] = None   # line of the `use:` entry that brought a block layer in

    def __str__(self):
        parts = [f"{self.file}:{self.line}:"]
        if self.network:
            parts.append(f"network '{self.network}',")
        if self.layer:
            parts.append(f"layer '{self.layer}'")
        if self.block:
            parts.append(f"(block '{self.block}', used at line {self.used_at})")
        return " ".join(parts).rstrip(",")


@dataclass
class Layer:
    name: str
    type: str
    inputs: List[str]
    settings: dict
    scope: str                          # ParameterScope
    lr_mult: Dict[str, float]           # parameter -> LRateMultiplier in this network
    where: Where
    shape: Tuple[int, ...] = ()         # output shape without the batch axis
    in_shapes: List[Tuple[int, ...]] = field(default_factory=list)
    shape_like: Optional[str] = None    # a loss target drawn by a generator takes its prediction's shape
    target_of: Optional[str] = None     # the loss whose `target: {generator|dataset}` this Input is

    def param_path(self, pname, prefix):
        """NNabla's parameter name, as NNC writes it: '<scope>/affine/W'."""
        return f"{self.scope}/{prefix}/{pname}"


@dataclass
class Network:
    name: str
    layers: List[Layer]                 # in an order that builds (inputs first)
    outputs: Dict[str, str]             # alias -> layer name
    where: Where

    def layer(self, name):
        return next((l for l in self.layers if l.name == name), None)

    @property
    def losses(self):
        from ..layers import get
        return [l for l in self.layers if get(l.type) is not None and get(l.type).is_loss]


@dataclass
class Optimizer:
    name: str
    network: str
    solver: str
    solver_settings: dict
    update_interval: int
    where: Where
    weight_decay: float = 0.0           # NNC's WeightDecay: nnabla's solver.weight_decay before each update
    lr_scheduler: Optional[dict] = None  # nncgan.schedules.SCHEDULERS entry, defaults filled; None: constant
    warmup: Optional[dict] = None        # nncgan.schedules.WARMUPS entry; None: no warm-up


@dataclass
class Executor:
    name: str
    network: str
    output: str                         # layer name in the network
    where: Where


@dataclass
class Config:
    batch_size: int
    max_epoch: int
    seed: int
    save_best: bool = False
    ema: Optional[float] = None         # decay of the executor's parameter average; None: off
    ema_start: int = 0                  # the iteration the average starts from
    monitor: Optional[dict] = None      # NNC's monitor pass (nncgan.train.monitor); None: off
    keep: object = "last"               # which complete epochs stay: "last" or {every, best} (nncgan.train.keep)
    save_every: Optional[dict] = None   # a partial epoch's save: {iterations, minutes}; None: off


@dataclass
class Graph:
    path: str
    name: str
    dataset: DatasetSpec
    config: Config
    networks: Dict[str, Network]
    optimizers: List[Optimizer]
    executors: Dict[str, Executor]
    text: str = ""                      # the file as written, copied into each run
    params: Dict[str, float] = field(default_factory=dict)   # `params:` after --set, e.g. {h: 64}

    def label_classes(self):
        """{dataset variable: (classes, who reads it)} of every Input fed to a OneHot: the labels the
        data must hold (DatasetSpec.check_labels)."""
        out = {}
        for net in self.networks.values():
            by_name = {l.name: l for l in net.layers}
            for layer in net.layers:
                src = by_name.get(layer.inputs[0]) if layer.type == "OneHot" and layer.inputs else None
                var = src.settings.get("dataset") if src is not None and src.type == "Input" else None
                if var is not None:
                    out.setdefault(var, (int(layer.settings["shape"][0]),
                                         f"OneHot '{layer.name}' in network '{net.name}'"))
        return out

    @property
    def executor(self):
        """The default executor: the first one (infer and the per-epoch tiles use it)."""
        return next(iter(self.executors.values()))
