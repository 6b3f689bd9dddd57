"""A run's executor loaded for drawing: graph copy, parameters of its last epoch (or their EMA)."""
import os
from dataclasses import dataclass
from pathlib import Path

import nnabla as nn

from . import run as runs
from .graph.parse import parse_graph
from .sampling import Sampler
from .train import checkpoint, ema


@dataclass
class Loaded:
    run: Path
    graph: object
    sampler: Sampler
    folder: Path        # the checkpoint epoch folder read
    used_ema: bool


def run_graph(run):
    """The graph a run trained (its graph.yaml, paths resolved against the original file's folder)."""
    info = runs.read_info(run)
    return parse_graph(Path(run) / runs.GRAPH_COPY, base_dir=os.path.dirname(info.get("graph", str(run))))


def load(run, n, executor=None, no_ema=False, graph=None):
    """The executor of `run` built for `n` samples with its last saved parameters.

    Clears NNabla's parameter registry first: each run (each stage of a pipeline) reads its own.
    """
    run = Path(run)
    graph = graph or run_graph(run)
    if executor is not None and executor not in graph.executors:
        from .errors import RunError
        raise RunError(f"the graph of {run} has no executor '{executor}'; its executors: "
                       f"{', '.join(graph.executors)}")
    nn.clear_parameters()
    with checkpoint.reading(run):  # the trainer removes no epoch while this reads one
        folder = checkpoint.latest(run)
        sampler = Sampler(graph, n, executor)  # built first, so load() checks the saved shapes against it
        checkpoint.load(run)
        used_ema = False if no_ema else ema.load_into_parameters(folder)
    return Loaded(run, graph, sampler, folder, used_ema)
