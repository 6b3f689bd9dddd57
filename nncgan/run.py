"""Run folders under runs/: one per `nncgan train`, holding the graph it ran and its epochs."""
import contextlib
import fcntl
import json
import os
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


def new_run(graph, out=None, runs_dir=RUNS_DIR):
    """Create the run folder (`out`, or runs/<time>-<graph name>) and copy the graph into it."""
    out = Path(out) if out is not None else fresh_path(graph, runs_dir)
    if (out / RUN_INFO).exists() and not _nothing_saved(out):
        raise RunError(f"{out} already holds a run; resume it with --resume, or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / GRAPH_COPY).write_text(graph.text, encoding="utf-8")
        write_info(out, {"graph": os.path.abspath(graph.path), "name": graph.name,
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "status": "running"})
    except OSError as e:
        raise RunError(f"cannot write the run folder {out}: {e.strerror}") from None
    return out


def _nothing_saved(out):
    """A run interrupted before its first epoch was saved: its folder may be started again."""
    from .train.checkpoint import has_checkpoint
    try:
        return read_info(out).get("status") == "interrupted" and not has_checkpoint(out)
    except RunError:
        return False


def read_info(run):
    try:
        info = json.loads((Path(run) / RUN_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunError(f"{run} is not an nncgan run folder (no readable {RUN_INFO})") from None
    if not isinstance(info, dict) or not isinstance(info.get("graph", ""), str):
        raise RunError(f"{Path(run) / RUN_INFO} is damaged (not a mapping with the graph's path)")
    return info


def write_info(run, info):
    path = Path(run) / RUN_INFO
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def update_info(run, **changes):
    info = read_info(run)
    info.update(changes)
    write_info(run, info)


def latest_run(runs_dir=RUNS_DIR, name=None):
    """The most recently started run (of graph `name`, if given) that has a saved epoch."""
    from .train.checkpoint import has_checkpoint
    root = Path(runs_dir)
    candidates = []
    for d in root.iterdir() if root.is_dir() else []:
        if (d / RUN_INFO).is_file() and has_checkpoint(d):
            try:
                info = read_info(d)
            except RunError:
                continue
            if name is None or info.get("name") == name:
                candidates.append((info.get("started", ""), d.stat().st_mtime, d))
    if not candidates:
        what = f" of graph '{name}'" if name else ""
        from .hints import command
        raise RunError(f"no run{what} with a saved epoch under {root}/; train one first "
                       f"({command('train', name or 'cgan_mnist')}) or pass --run DIR")
    return max(candidates)[2]


@contextlib.contextmanager
def locked(run):
    """Hold the run folder for as long as the block runs: a second `nncgan train` on it is refused.

    flock is released by the kernel when the process dies, even by kill -9, so a lock is
    never left stale. Taking it also proves, before any training, that the folder is writable.
    """
    path = Path(run) / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        probe = Path(run) / f".probe-{os.getpid()}"
        probe.write_bytes(b"nncgan")
        probe.unlink()
    except OSError as e:
        raise RunError(f"cannot write in the run folder {run}: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise RunError(f"{run} is in use by another nncgan train (pid {other}); "
                           f"wait for it to finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
