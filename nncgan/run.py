"""Run folders under runs/: one per `nncgan train`, holding the graph it ran and its epochs."""
import contextlib
import fcntl
import json
import os
import re
import time
from pathlib import Path

from .errors import RunError

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
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "status": "running"})
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

