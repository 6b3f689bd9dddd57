"""A run folder as an object (`Run`): its run.json, the graph.yaml it trains, its kind, its saved
epochs and a Sampler on the last one; finding runs by graph, kind and status. What every command
that reads a run opens it with. The folder itself (claiming, locking, run.json) is run.py's, whose
names are re-exported here so that a reader imports one module."""
import os
from pathlib import Path

from .errors import NncganError, RunError
from .run import *  # noqa: F401,F403  (RUNS_DIR, RUN_INFO, GRAPH_COPY, claim, locked, read_info, ...)
from .run import RUNS_DIR, RUN_INFO, LOCK, GRAPH_COPY, field, locked, read_info, update_info

FEATURES = "features"  # the output a classifier graph's executor network names its feature layer by

# What a run's graph is, by what its executor does (recorded in run.json as "kind"):
GAN = "gan"                        # draws images from latent codes (and labels)
IMAGE_TO_IMAGE = "image-to-image"  # reads dataset images (or an --input) and draws from them
CLASSIFIER = "classifier"          # reads images and names a feature layer: what `eval` reads with
KINDS = (GAN, IMAGE_TO_IMAGE, CLASSIFIER)
DRAWS = (GAN, IMAGE_TO_IMAGE)      # what infer, report and export take unasked: never a classifier


def kind_of(graph):
    """GAN, IMAGE_TO_IMAGE or CLASSIFIER: what the graph's executor does. A classifier's reads the
    dataset variable x only and names its feature layer as the output FEATURES."""
    if not graph.executors:
        return GAN
    from .sampling import data_inputs
    reads = data_inputs(graph)
    if reads == ["x"] and FEATURES in graph.networks[graph.executor.network].outputs:
        return CLASSIFIER
    return IMAGE_TO_IMAGE if reads else GAN


class Run:
    """A run folder (runs/<time>-<name>): its run.json, the graph.yaml it trains, its saved epochs.

    Opening one reads nothing; each property reads what it needs (a damaged run.json is an error
    only where it is read). `str(run)` and `os.fspath(run)` are the folder's path."""

    def __init__(self, path, graph=None):
        """`graph`: the run's graph when the caller has parsed it already."""
        self.path = Path(path.path if isinstance(path, Run) else path)
        self._graph = graph if graph is not None else getattr(path, "_graph", None)

    def __fspath__(self):
        return str(self.path)

    def __str__(self):
        return str(self.path)

    def __repr__(self):
        return f"Run({str(self.path)!r})"

    def __eq__(self, other):
        return isinstance(other, Run) and other.path == self.path

    def __hash__(self):
        return hash(self.path)

    @property
    def name(self):
        return self.path.name

    # run.json
    @property
    def info(self):
        return read_info(self.path)

    def field(self, key, default=None):
        return field(self.info, key, default)

    def update(self, **changes):
        update_info(self.path, **changes)

    @property
    def status(self):
        return status_of(self.info)

    # the graph
    @property
    def graph_file(self):
        return self.path / GRAPH_COPY

    @property
    def base_dir(self):
        """Where the graph's relative paths (CSV files, image folders) are resolved: the folder of
        the file the run was started from, as `nncgan train` resolved them."""
        g = field(self.info, "graph")
        return os.path.dirname(g) if g else str(self.path)

    def graph(self, batch_size=False):
        """The graph the run trains (its own graph.yaml, whatever happened to the original file
        since), parsed once; with `batch_size`, at the batch size the run trains with (run.json's,
        which --batch-size may have set)."""
        from . import safeio
        from .graph.parse import parse_graph
        if self._graph is None:
            base_dir = self.base_dir  # no readable run.json: not a run folder, said first
            if not safeio.is_regular(self.graph_file):
                raise RunError(f"{self.graph_file} is missing or not a regular file")
            self._graph = parse_graph(self.graph_file, base_dir=base_dir)
        if batch_size and self.field("batch_size"):  # a damaged value is ignored: the graph's is used
            self._graph.config.batch_size = self.field("batch_size")
        return self._graph

    @property
    def kind(self):
        """GAN, IMAGE_TO_IMAGE or CLASSIFIER (run.json's, else from the graph)."""
        k = self.info.get("kind")
        return k if k in KINDS else kind_of(self.graph())

    # saved epochs
    @property
    def has_epoch(self):
        """Whether an epoch was saved (complete or not: see latest_epoch)."""
        from .train.checkpoint import has_checkpoint
        return has_checkpoint(self.path)

    def latest_epoch(self):
        """The folder of the last complete saved epoch, verified (RunError if there is none)."""
        from .train import checkpoint
        return checkpoint.latest(self.path)

    def state(self):
        """The last saved epoch's state, unverified (for listings), or None."""
        from .train import checkpoint
        return checkpoint.peek_state(self.path)

    def sampler(self, n, executor=None, no_ema=False):
        """The executor (default: the graph's first) built for `n` samples on the last saved
        epoch's parameters (or their EMA, where the run keeps one): a Loaded."""
        from .train import checkpoint
        graph = self.graph()
        if executor is not None and executor not in graph.executors:
            raise RunError(f"the graph of {self.path} has no executor '{executor}'; its executors: "
                           f"{', '.join(graph.executors)}")
        with checkpoint.reading(self.path):  # the trainer removes no epoch while this reads one
            return load_epoch(graph, n, checkpoint.latest(self.path), executor, no_ema, run=self, verified=True)

    def locked(self):
        return locked(self.path)


def status_of(info):
    """run.json's status, as shown: "interrupted" for a "running" run whose process is gone on
    this host (killed without a chance to say so: kill -9, a power cut)."""
    import socket
    s = field(info, "status", "?")
    pid = field(info, "pid")
    if s == "running" and pid and field(info, "host") == socket.gethostname() and not _alive(pid):
        return "interrupted"
    return s


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


class Loaded:
    """An executor loaded for drawing: the Run (or None), its graph, the Sampler, the epoch folder read."""

    def __init__(self, run, graph, sampler, folder, used_ema, state):
        self.run, self.graph, self.sampler, self.folder, self.used_ema = run, graph, sampler, folder, used_ema
        self.epoch = state.get("epoch") if isinstance(state, dict) else None


def load_epoch(graph, n, folder, executor=None, no_ema=False, run=None, verified=False):
    """The executor of `graph` built for `n` samples with the parameters saved in epoch `folder`
    (verified here unless the caller just did, under the same reading lock; their EMA unless
    `no_ema`). The one place an epoch is loaded into a Sampler.

    Clears NNabla's parameter registry first: each run (each stage of a pipeline) reads its own."""
    import nnabla as nn
    from .sampling import Sampler
    from .train import checkpoint, ema
    folder = Path(folder)
    nn.clear_parameters()
    # built first, so the saved shapes are checked against it; every parameter is then loaded
    sampler = Sampler(graph, n, executor, placeholder=True)
    state = checkpoint.load(folder.parent.parent, folder=folder, verified=verified)  # RUN/checkpoints/epoch_N
    used_ema = False if no_ema else ema.load_into_parameters(folder)
    return Loaded(run, graph, sampler, folder, used_ema, state)


def all_runs(runs_dir=RUNS_DIR):
    """Every folder under `runs_dir` that is (or is becoming) a run: it has run.json or a lock."""
    root = Path(runs_dir)
    return [Run(d) for d in sorted(root.iterdir()) if d.is_dir() and (
        os.path.lexists(d / RUN_INFO) or os.path.lexists(d / LOCK))] if root.is_dir() else []


def _matches(run, name, kinds, status, graph_file):
    if not (run.path / RUN_INFO).is_file() or not run.has_epoch:
        return False
    try:
        info = run.info
        if name is not None and field(info, "name") != name:
            return False
        if graph_file is not None and field(info, "graph") != graph_file:
            return False
        if status is not None and field(info, "status") != status:
            return False
        return kinds is None or run.kind in kinds
    except NncganError:  # a damaged run.json or graph: not a run to take unasked
        return False


def find(runs_dir=RUNS_DIR, name=None, kinds=None, status=None, graph_file=None):
    """The runs under `runs_dir` with a saved epoch (of graph `name`, of one of `kinds`, with
    `status`, started from the file `graph_file` (an absolute path), where given), the most
    recently started first."""
    found = [(field(r.info, "started", ""), r.path.stat().st_mtime, str(r.path), r)
             for r in all_runs(runs_dir) if _matches(r, name, kinds, status, graph_file)]
    return [f[-1] for f in sorted(found, key=lambda f: f[:3], reverse=True)]


def latest(runs_dir=RUNS_DIR, name=None, kinds=None, status=None, how="--run DIR"):
    """The most recently started run (of graph `name`, of `kinds`, with `status`) with a saved
    epoch; a RunError saying what to train if there is none."""
    found = find(runs_dir, name, kinds, status)
    if not found:
        what = ("GAN run" if kinds is not None and set(kinds) <= set(DRAWS) else "run") \
            + (f" of graph '{name}'" if name else "")
        from .hints import command
        raise RunError(f"no {what} with a saved epoch under {Path(runs_dir)}/; train one first "
                       f"({command('train', name or 'cgan_mnist')}) or "
                       + (f"pass {how}" if how.startswith("-") else "name the run"))
    return found[0]


def latest_run(runs_dir=RUNS_DIR, name=None):
    """The path of the most recently started run (of graph `name`, if given) with a saved epoch."""
    return latest(runs_dir, name).path


def chosen(run, runs_dir, job, kinds=DRAWS, how="--run DIR", say=print):
    """The Run named by `run`; if none, the latest of `kinds` with a saved epoch, said out loud
    ("drawing from runs/X, the latest GAN run (name another with --run DIR)").

    infer, report and export draw or show generated images: a classifier trained after the
    GAN (as the README asks) is never taken by them."""
    if run:
        return Run(run)
    found = latest(runs_dir, kinds=kinds, how=how)
    say(f"nncgan: {job} {found}, the latest GAN run (name another with {how})")
    return found
