"""Run folders under runs/: one per `nncgan train`, holding the graph it ran and its epochs."""
import contextlib
import fcntl
import json
import os
import re
import time
from pathlib import Path

from .errors import NncganError, RunError

RUNS_DIR = "runs"
GRAPH_COPY = "graph.yaml"
RUN_INFO = "run.json"
LOCK = ".lock"


def fresh_path(graph, runs_dir=RUNS_DIR):
    """runs/<time>-<graph name>, numbered when taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(runs_dir) / f"{stamp}-{graph.name}"
    n = 1
    while out.exists():
        n += 1
        out = Path(runs_dir) / f"{stamp}-{graph.name}-{n}"
    return out


# What nncgan makes in a run folder (and their temporary names, ".NAME..."): a restart removes
# only these, and a folder holding anything else is not taken for a run.
OWN = (GRAPH_COPY, RUN_INFO, LOCK, "checkpoints", "monitor", "samples", "learning_curve.png", "infer", "eval",
       "report.html", "export", "tensorboard")
# Fields of run.json and the type each must have; a field of another type is ignored (and reported).
FIELDS = {"graph": str, "name": str, "started": str, "status": str, "max_epoch": int, "pid": int, "host": str,
          "batch_size": int, "epochs": int,
          "kind": str}


def is_own(name):
    """Whether an entry of a run folder is nncgan's: one of OWN or a temporary file of one."""
    return name in OWN or name.startswith(".probe-") or any(name.startswith(f".{o}.") for o in OWN)


def foreign(folder):
    """The entries of `folder` that nncgan did not make there."""
    return sorted(p.name for p in Path(folder).iterdir() if not is_own(p.name))


def _take_lock(fd, run):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        raise RunError(f"{run} is in use by another nncgan train (pid {other}); "
                       f"wait for it to finish or stop it first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)


def _held_by_other(run):
    """Why `run` (a run folder) cannot be started again now, or None."""
    from .train.checkpoint import complete_epoch, peek_partial
    epoch = complete_epoch(run) or ("a partial epoch" if peek_partial(run) else None)  # config.save_every
    if epoch:
        return (f"{run} already holds a run with {epoch} saved; continue it with --resume "
                f"(or choose another --out)")
    return None


def _in_use(out):
    """The RunError to raise if another process holds `out`'s lock now, else None (reads only)."""
    try:
        fd = os.open(Path(out) / LOCK, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        return RunError(f"{out} is in use by another nncgan train (pid {other}); "
                        f"wait for it to finish or stop it first")
    finally:
        os.close(fd)


def check_out(out, restart=False):
    """Refuse, before anything is loaded or written, an --out that cannot become this run:
    a file, a folder under a file, a folder holding what is not nncgan's (or nncgan-like names
    without a run's run.json or lock), a run in use, one with a complete epoch, or one stopped
    in epoch 1 without --restart. Returns whether `out` exists (as a folder to claim)."""
    out = Path(out)
    for p in [out, *out.parents]:  # the first part of the path that exists must be a folder
        if os.path.lexists(p):
            if not p.is_dir():
                raise RunError(f"cannot write the run folder {out}: {p} is not a folder")
            break
    if not out.exists():
        return False
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as e:
        raise RunError(f"cannot use {out} as the run folder: {e.strerror}") from None
    if not entries:
        return True
    other = [n for n in entries if not is_own(n)]
    if other or not {RUN_INFO, LOCK} & set(entries):
        other = other or entries
        shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        raise RunError(f"{out} is not empty and is not an nncgan run (it holds {shown}); "
                       f"nothing was written there: choose an empty or new --out")
    busy = _in_use(out)
    if busy:
        raise busy
    held = _held_by_other(out)
    if held:
        raise RunError(held + ("; --restart only starts again a run with no complete epoch (delete the "
                               "folder yourself to throw its epochs away)" if restart else ""))
    if not restart:
        raise RunError(f"{out} already holds a run with no complete saved epoch (it stopped in epoch 1); "
                       f"start it again with: --out {out} --restart (removes only nncgan's files there), "
                       f"or choose another --out")
    return True


def _claim_existing(out, restart):
    """Claim an existing folder `out`: empty, or (with `restart`) a run with no complete epoch."""
    check_out(out, restart)
    if not any(out.iterdir()):
        return _exclusive_lock(out)
    fd = _open_lock(out, create=True)
    try:
        _take_lock(fd, out)
        if _held_by_other(out):  # an epoch saved since we looked: never throw it away
            raise RunError(_held_by_other(out))
        clean_own(out)
    except BaseException:
        os.close(fd)
        raise
    return fd


# Inside nncgan's folders of a run, the names nncgan writes; anything else there is kept.
OWN_INSIDE = {"checkpoints": re.compile(r"(epoch_\d{4,}|latest|partial|\.(epoch_\d{4,}|latest|partial)\..*)$"),
              "monitor": re.compile(r"((.+-loss|eval-.+)\.series\.txt|\..*\.tmp.*)$"),
              "samples": re.compile(r"(epoch_\d{4,}\.png|progress\.gif|\..*\.tmp.*)$"),
              "infer": re.compile(r".*\.png$"), "eval": re.compile(r".*\.json$"),
              "export": re.compile(r".*\.(nnp|onnx)$"),
              "tensorboard": re.compile(r"events\.out\.tfevents\..*$")}


def clean_own(run):
    """Remove what nncgan made in `run` (except the lock being held); a user's files stay, and
    a folder of nncgan's holding a user's file stays with that file."""
    import shutil
    for p in Path(run).iterdir():
        if not is_own(p.name) or p.name == LOCK:
            continue
        if p.is_dir() and not p.is_symlink():
            pattern = OWN_INSIDE.get(p.name)
            for q in p.iterdir() if pattern else ():
                if pattern.match(q.name):
                    shutil.rmtree(q) if q.is_dir() and not q.is_symlink() else q.unlink()
            with contextlib.suppress(OSError):
                p.rmdir()  # only when empty
        else:
            p.unlink()


def _open_lock(run, create):
    try:
        return os.open(Path(run) / LOCK, os.O_RDWR | os.O_NONBLOCK | (os.O_CREAT | (os.O_EXCL if create == "excl" else 0)
                                                     if create else 0), 0o644)
    except FileExistsError:
        raise RunError(f"{run} is being started by another nncgan train at this moment; "
                       f"choose another --out") from None
    except OSError as e:
        raise RunError(f"cannot write the run folder {run}: {e.strerror}") from None


def _exclusive_lock(out):
    """Claim an empty folder: the lock file is made with O_EXCL, so of two `train --out X`
    started together exactly one gets it; the other has written nothing."""
    fd = _open_lock(out, "excl")
    try:
        _take_lock(fd, out)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def claim(graph, out=None, runs_dir=RUNS_DIR, restart=False):
    """Create and hold a new run folder (`out`, or runs/<time>-<graph name>): exclusively created
    and locked before anything is written in it, then the graph and run.json are written.
    The lock is held until the block ends."""
    fd = None
    try:
        if out is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            Path(runs_dir).mkdir(parents=True, exist_ok=True)
            n = 1
            out = Path(runs_dir) / f"{stamp}-{graph.name}"
            while True:
                try:
                    out.mkdir()  # exclusive: two runs started in the same second get -2, -3
                    break
                except FileExistsError:
                    n += 1
                    out = Path(runs_dir) / f"{stamp}-{graph.name}-{n}"
            fd = _exclusive_lock(out)
        else:
            out = Path(out)
            try:
                out.mkdir(parents=True)
                fd = _exclusive_lock(out)
            except FileExistsError:
                if not out.is_dir():
                    raise RunError(f"{out} exists and is not a folder; choose another --out") from None
                fd = _claim_existing(out, restart)
    except OSError as e:
        raise RunError(f"cannot write the run folder {out or runs_dir}: {e.strerror}") from None
    try:
        from . import safeio
        kept = f"nothing was trained; remove {out} or start it again with --restart"
        safeio.write_text(out / GRAPH_COPY, graph.text, kept=kept)
        write_info(out, {"graph": os.path.abspath(graph.path), "name": graph.name,
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "status": "running",
                         "kind": kind_of(graph)})
        yield out
    finally:
        os.close(fd)  # releases the lock


def new_run(graph, out=None, runs_dir=RUNS_DIR, restart=False):
    """Create the run folder (`out`, or runs/<time>-<graph name>) and copy the graph into it."""
    with claim(graph, out, runs_dir, restart) as run:
        return run


def read_info(run):
    from . import safeio
    try:
        info = json.loads(safeio.read_text(Path(run) / RUN_INFO, limit=1 << 20))
    except (OSError, ValueError):
        raise RunError(f"{run} is not an nncgan run folder (no readable {RUN_INFO})") from None
    if not isinstance(info, dict) or not isinstance(info.get("graph", ""), str):
        raise RunError(f"{Path(run) / RUN_INFO} is damaged (not a mapping with the graph's path)")
    return info


def damaged_fields(info):
    """The fields of run.json (read_info's dict) whose type or value is wrong: {field: value}."""
    bad = {}
    for k, t in FIELDS.items():
        v = info.get(k)
        if k in info and (not isinstance(v, t) or isinstance(v, bool) or (t is int and v < 0)):
            bad[k] = v
    return bad


def field(info, key, default=None):
    """A field of run.json if it has the right type, else `default` (a damaged field is ignored)."""
    return default if key not in info or key in damaged_fields(info) else info[key]


def write_info(run, info):
    from . import safeio
    safeio.write_text(Path(run) / RUN_INFO, json.dumps(info, indent=2), what=f"{Path(run) / RUN_INFO}")


def update_info(run, **changes):
    info = read_info(run)
    info.update(changes)
    write_info(run, info)


@contextlib.contextmanager
def locked(run):
    """Hold the run folder for as long as the block runs: a second `nncgan train` on it is refused.

    flock is released by the kernel when the process dies, even by kill -9, so a lock is
    never left stale. Taking it also proves, before any training, that the folder is writable.
    """
    fd = _open_lock(run, create=True)
    try:
        probe = Path(run) / f".probe-{os.getpid()}"
        probe.write_bytes(b"nncgan")
        probe.unlink()
    except OSError as e:
        os.close(fd)
        raise RunError(f"cannot write in the run folder {run}: {e.strerror}") from None
    try:
        _take_lock(fd, run)
        yield
    finally:
        os.close(fd)  # releases the lock


# ---- a run folder as an object: what every command that reads a run opens it with

# What a run's graph is, by what its executor does (recorded in run.json as "kind"):
GAN = "gan"                        # draws images from latent codes (and labels)
IMAGE_TO_IMAGE = "image-to-image"  # reads dataset images (or an --input) and draws from them
CLASSIFIER = "classifier"          # reads images and names a feature layer: what `eval` reads with
KINDS = (GAN, IMAGE_TO_IMAGE, CLASSIFIER)
DRAWS = (GAN, IMAGE_TO_IMAGE)      # what infer, report and export take unasked: never a classifier


def kind_of(graph):
    """GAN, IMAGE_TO_IMAGE or CLASSIFIER: what the graph's executor does."""
    if not graph.executors:
        return GAN
    from .eval.classifier import is_classifier
    from .sampling import data_inputs
    if is_classifier(graph):
        return CLASSIFIER
    return IMAGE_TO_IMAGE if data_inputs(graph) else GAN


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
            return load_epoch(graph, n, checkpoint.latest(self.path), executor, no_ema, run=self)

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


def load_epoch(graph, n, folder, executor=None, no_ema=False, run=None):
    """The executor of `graph` built for `n` samples with the parameters saved in epoch `folder`
    (verified; their EMA unless `no_ema`). The one place an epoch is loaded into a Sampler.

    Clears NNabla's parameter registry first: each run (each stage of a pipeline) reads its own."""
    import nnabla as nn
    from .sampling import Sampler
    from .train import checkpoint, ema
    folder = Path(folder)
    nn.clear_parameters()
    sampler = Sampler(graph, n, executor)  # built first, so the saved shapes are checked against it
    state = checkpoint.load(folder.parent.parent, folder=folder)  # RUN/checkpoints/epoch_N
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
