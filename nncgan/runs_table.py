"""`nncgan runs`: the runs under runs/ at a glance, newest first.

A run says "running" in its run.json while it trains; one killed without a chance to say
otherwise (kill -9, a power cut) still says so. run.json records the training process's id
and host, so a "running" run whose process is gone on this host is shown as interrupted.
"""
from . import runs
from .errors import RunError
from .train import progress

status = runs.status_of


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
    rows = []
    for run in runs.all_runs(runs_dir):
        try:
            info = run.info
        except RunError:
            rows.append({"run": run.name, "graph": "?", "started": "", "epoch": 0, "max_epoch": None,
                         "losses": {}, "status": f"damaged ({runs.RUN_INFO} unreadable)"})
            continue
        state = run.state() or {}
        epoch, losses = _last_losses(state)
        bad = runs.damaged_fields(info)
        seconds = state.get("seconds") if isinstance(state.get("seconds"), dict) else {}
        rows.append({"run": run.name, "graph": runs.field(info, "name", "?"), "started": runs.field(info, "started", ""),
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
