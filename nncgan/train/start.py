"""`nncgan train`: which run folder (a new one, or the run to resume, opened first), the graph it
trains, one process or several, then the loop."""
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import runs
from ..errors import RunError


@dataclass
class TrainOptions:
    """What `nncgan train` was asked (the command line's options, as plain values). The options a
    resumed run keeps (train/settings.py KEPT) are filled in from its run.json when not given."""
    graph: str
    epochs: int = None
    batch_size: int = None
    context: str = "auto"
    out: str = None
    resume: bool = False
    restart: bool = False
    data_dir: str = None
    runs_dir: str = runs.RUNS_DIR
    quiet: bool = False
    log_file: str = None
    limit_samples: int = None
    limit_iterations: int = None
    save_every: str = None
    no_eval: bool = False
    type_config: str = "float"
    procs: str = "auto"
    comm: str = "auto"
    set: list = field(default_factory=list)
    argv: list = field(default_factory=list)   # the command line, which --procs N re-launches


def to_resume(graph_file, out=None, runs_dir=runs.RUNS_DIR):
    """The run `train GRAPH --resume` continues: --out, else the latest run started from the file
    GRAPH (run.json records its path), else the latest run of the graph's name. The file itself
    is not validated: the run trains its own graph.yaml, whatever happened to the file since."""
    if out:
        return runs.Run(out)
    how = "--out DIR"
    by_file = runs.find(runs_dir, graph_file=os.path.abspath(graph_file))
    if by_file:
        return by_file[0]
    from ..graph.yamlio import load_file
    from ..errors import NncganError
    try:
        name = load_file(str(graph_file)).get("name")
    except (NncganError, AttributeError):
        name = None
    return runs.latest(runs_dir, str(name or Path(graph_file).stem), how=how)


def train(o, say=print):
    """`nncgan train` with options `o` (a TrainOptions); returns the exit status."""
    from . import distributed, settings
    if o.resume and o.set:
        raise RunError("--set cannot be used with --resume: a resumed run trains the graph it started "
                       "with (its graph.yaml); start a new run to change it")
    if o.resume and o.restart:
        raise RunError("--resume continues a run, --restart starts one again: give one of them")
    if o.resume:  # the run first: its own graph.yaml, and its own settings unless given again
        resumed = to_resume(o.graph, o.out, o.runs_dir)
        info = resumed.info
        graph = resumed.graph(batch_size=True)
        settings.env_alias(o, say)
        settings.resumed(o, info, say)
    else:
        from ..graph import overrides
        graph, applied = overrides.load(o.graph, o.set)
        for line in overrides.describe(applied):
            say(f"nncgan: {line}")
        settings.env_alias(o, say)
    log = say
    if o.log_file:
        from .progress import file_log
        log = file_log(o.log_file)
    if o.batch_size:
        set_batch_size(graph, o.batch_size)
    if o.comm != "none":
        from .launch import launch_if_asked, under_launcher
        if not under_launcher() and not o.out:  # every rank must name the same run folder
            o.out = str(resumed.path if o.resume else runs.fresh_path(graph, o.runs_dir))
            o.argv = list(o.argv) + ["--out", o.out]
        code = launch_if_asked(o.argv, o.procs, o.context, graph.config.batch_size)
        if code is not None:  # --procs N > 1: this process started N ranks and waited for them
            return code
    rank, size, _ = distributed.plan(o.comm)  # a --comm that cannot work stops here
    if size > 1:
        if o.comm == "nccl":
            distributed.require_cuda(o.context, size)
        if not o.out:
            raise RunError(f"training as {size} processes: name the run with --out DIR, so that all agree on it")
    if rank > 0:  # only rank 0 writes the run (and logs); the others train into a scratch copy
        o.quiet = True
        return distributed.train_other_rank(o.out, o.resume, graph, lambda run, info: _train(
            o, graph, run, info, lambda *a: None, say=lambda *a: None))
    if o.resume:
        run = resumed.path
        from .checkpoint import has_checkpoint, peek_partial
        if not has_checkpoint(run) and not peek_partial(run):  # a partial save (config.save_every) resumes too
            raise RunError(f"{run} has no saved epoch to resume (it stopped in epoch 1); start it again "
                           f"with: nncgan train {o.graph} --out {run} --restart")
        with runs.locked(run):
            return _train(o, graph, run, info, log, say)
    if o.restart and not o.out:
        raise RunError("--restart starts again the run named by --out DIR")
    if o.out:
        runs.check_out(o.out, o.restart)  # what cannot become the run: refused before loading data
    from . import loop
    try:
        loop.load_data(graph, o.data_dir, log=log, limit_samples=o.limit_samples)  # under a batch: refused first
        with runs.claim(graph, o.out, o.runs_dir, restart=o.restart) as run:
            return _train(o, graph, run, None, log, say)
    finally:
        loop._PRELOADED.clear()


def _train(o, graph, run, info, log, say=print):
    """Train `graph` in the claimed (or locked, resumed: `info` its run.json) run folder `run`."""
    from .. import context, hints
    from .loop import train
    from .settings import recorded
    if info is not None:
        runs.update_info(run, status="running")
    else:
        runs.update_info(run, batch_size=graph.config.batch_size, kind=runs.kind_of(graph))
    runs.update_info(run, **recorded(o))
    if o.save_every:  # --save-every (or the run's own, on --resume) over config.save_every
        from .keep import option
        graph.config.save_every = option(o.save_every)
    from .distributed import setup
    backend = context.select(o.context, type_config=o.type_config)
    from ..provenance import record
    prov = record(hints.argv(), backend)
    line = prov.pop("command")
    runs.update_info(run, **prov, commands=(info or {}).get("commands", []) + [line])
    comm = setup(o.comm, backend, type_config=o.type_config)
    log(f"nncgan: training {graph.path} in {run} on {backend}"
        + (f" (rank {comm.rank} of {comm.size} processes)" if comm.size > 1 else ""))
    from .progress import log_ending
    with log_ending(o.log_file if comm.writes else None, run):
        train(graph, run, max_epoch=o.epochs, resume=o.resume, data_dir=o.data_dir, quiet=o.quiet,
              log=log, evaluate=not o.no_eval, comm=comm, limit_samples=o.limit_samples,
              limit_iterations=o.limit_iterations)
    if not comm.writes:
        return 0
    if runs.kind_of(graph) == runs.CLASSIFIER:
        say(f"nncgan: done; {hints.command('eval')} now reads generated images with it")
        return 0
    ex = graph.executor
    labelled = any(l.type == "Input" and l.settings.get("dataset") == "y" for l in graph.networks[ex.network].layers)
    say(f"nncgan: done; draw samples with: "
        f"{hints.command('infer', '--run', run, *(['--label', 7] if labelled else []))}")
    return 0


def set_batch_size(graph, n):
    """--batch-size N: refused when N samples of a network would not fit in memory."""
    from ..limits import memory_error
    for net in graph.networks.values():
        msg = memory_error(net, n, "--batch-size")
        if msg:
            raise RunError(msg)
    graph.config.batch_size = n
