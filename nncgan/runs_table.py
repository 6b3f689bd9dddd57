"""`nncgan runs`: the runs under runs/ at a glance, newest first.

A run says "running" in its run.json while it trains; one killed without a chance to say
otherwise (kill -9, a power cut) still says so. run.json records the training process's id
and host, so a "running" run whose process is gone on this host is shown as interrupted.
"""
import os
import socket
from pathlib import Path

from . import run as runs
from .errors import RunError
from .train import checkpoint, progress


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def status(info):
    s = info.get("status", "?")
    if s == "running" and isinstance(info.get("pid"), int) and info.get("host") == socket.gethostname() \
            and not _alive(info["pid"]):
        return "interrupted"
    return s


def collect(runs_dir=runs.RUNS_DIR):
    """One dict per run folder under `runs_dir`, newest first."""
    root = Path(runs_dir)
    rows = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if not (d / runs.RUN_INFO).is_file():
            continue
        try:
            info = runs.read_info(d)
        except RunError:
            continue
        state = checkpoint.peek_state(d) or {}
        epoch = state.get("epoch", 0)
        losses = state.get("losses", {}).get(str(epoch), {})
        rows.append({"run": d.name, "graph": info.get("name", "?"), "started": info.get("started", ""),
                     "epoch": epoch, "max_epoch": info.get("max_epoch"), "losses": losses,
                     "seconds": sum((state.get("seconds") or {}).values()),
                     "status": status(info)})
    rows.sort(key=lambda r: (r["started"], r["run"]), reverse=True)
    return rows


def table(rows):
    if not rows:
        return "no runs"
    head = ("RUN", "GRAPH", "STARTED", "EPOCHS", "STATUS", "TIME", "LAST LOSSES")
    lines = [head]
    for r in rows:
        epochs = f"{r['epoch']}/{r['max_epoch'] if r['max_epoch'] is not None else '?'}"
        losses = ", ".join(f"{k} {v:.4f}" for k, v in r["losses"].items()) or "-"
        took = progress.duration(r["seconds"]) if r.get("seconds") else "-"  # the saved epochs' training time
        lines.append((r["run"], r["graph"], r["started"].replace("T", " "), epochs, r["status"], took, losses))
    widths = [max(len(l[i]) for l in lines) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(l, widths)) + "  " + l[-1] for l in lines)
