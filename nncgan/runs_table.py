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
    s = runs.field(info, "status", "?")
    pid = runs.field(info, "pid")
    if s == "running" and pid and runs.field(info, "host") == socket.gethostname() and not _alive(pid):
        return "interrupted"
    return s


def _last_losses(state):
    """The saved epoch and its mean losses, from a state that may be damaged: (epoch, {name: value})."""
    epoch = state.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        return 0, {}
    losses = state.get("losses")
    losses = losses.get(str(epoch)) if isinstance(losses, dict) else None
    if not isinstance(losses, dict):
        return epoch, {}
    return epoch, {str(k): v for k, v in losses.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def collect(runs_dir=runs.RUNS_DIR):
    """One dict per run folder under `runs_dir`, newest first. A run whose run.json is damaged is
    listed as "damaged" (with what is wrong), never hiding the others."""
    root = Path(runs_dir)
    rows = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if not d.is_dir() or not (os.path.lexists(d / runs.RUN_INFO) or os.path.lexists(d / runs.LOCK)):
            continue
        try:
            info = runs.read_info(d)
        except RunError:
            rows.append({"run": d.name, "graph": "?", "started": "", "epoch": 0, "max_epoch": None,
                         "losses": {}, "status": f"damaged ({runs.RUN_INFO} unreadable)"})
            continue
        state = checkpoint.peek_state(d) or {}
        epoch, losses = _last_losses(state)
        bad = runs.damaged_fields(info)
        seconds = state.get("seconds") if isinstance(state.get("seconds"), dict) else {}
        rows.append({"run": d.name, "graph": runs.field(info, "name", "?"), "started": runs.field(info, "started", ""),
                     "epoch": epoch, "max_epoch": runs.field(info, "max_epoch"), "losses": losses,
                     "seconds": sum(v for v in seconds.values() if isinstance(v, (int, float))),
                     "status": status(info) + (f" (damaged {runs.RUN_INFO}: {', '.join(bad)})" if bad else "")})
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
