"""A run's executor loaded for drawing: graph copy, parameters of its last epoch (or their EMA).

The names here are kept for the code that imports them; a run folder is opened by `run.Run`."""
from .run import Loaded, Run  # noqa: F401  (Loaded: the result of load)


def run_graph(run):
    """The graph a run trained (its graph.yaml, paths resolved against the original file's folder)."""
    return Run(run).graph()


def load(run, n, executor=None, no_ema=False, graph=None):
    """The executor of `run` built for `n` samples with its last saved parameters (see Run.sampler)."""
    return Run(run, graph).sampler(n, executor, no_ema)
