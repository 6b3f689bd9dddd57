"""Checkpoint policy: which complete epochs stay on disk (`config.keep`) and when a partial
epoch is saved (`config.save_every`), so that `--resume` continues from exactly there.

config.keep:
  last                        only the last complete epoch (the default, NNC's Save Best off)
  {every: N}                  also every N-th epoch (N, 2N, ...)
  {best: {k: K, score: S}}    also the K best epochs by the per-epoch score S that training's
                              eval writes (monitor/eval-S.series.txt); `fid` is better lower,
                              the accuracies, precision and recall higher. An epoch with no score
                              is not among the best. `every` and `best` may be given together.
The last complete epoch is always kept: it is the one `infer` uses (checkpoints/latest).

config.save_every: {iterations: N} and/or {minutes: M}: inside an epoch, the run is saved to
checkpoints/partial (never used by `infer`) after every N iterations / M minutes; a save that
falls inside an optimizer's update_interval waits for its update. `--resume` continues from the
partial save when it is newer than the last complete epoch, bit for bit as an unbroken run would.
"""
import math
import re
import time

from .progress import eval_series_path as series_path, read_series
from . import checkpoint

# Per-epoch scores (nncgan.eval.hook's series) and which way is better.
LOWER_BETTER = ("fid",)
HIGHER_BETTER = ("label_accuracy", "precision", "recall", "test_accuracy")
KEEP_SHAPE = "last, {every: N}, {best: {k: K, score: SCORE}} or both of every and best"
SAVE_SHAPE = "null (off), {iterations: N}, {minutes: M} or both"


def _count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def parse_keep(v):
    """config.keep -> (spec, [(key or None, problem)]); spec None means `last`."""
    if v is None or v == "last":
        return None, []
    if not isinstance(v, dict) or not v or set(v) - {"every", "best"}:
        return None, [(None, f"config.keep must be {KEEP_SHAPE}, got {v!r}")]
    problems, spec = [], {}
    if "every" in v:
        if _count(v["every"]):
            spec["every"] = v["every"]
        else:
            problems.append(("every", f"config.keep.every must be an integer >= 1, got {v['every']!r}"))
    if "best" in v:
        b = v["best"]
        scores = LOWER_BETTER + HIGHER_BETTER
        if not isinstance(b, dict) or set(b) != {"k", "score"} or not _count(b["k"]) or b["score"] not in scores:
            problems.append(("best", f"config.keep.best must be {{k: K (>= 1), score: one of {', '.join(scores)}}}"
                                     f", got {b!r}"))
        else:
            spec["best"] = {"k": b["k"], "score": b["score"]}
    return (None if problems else dict(spec)), problems


def parse_save_every(v):
    """config.save_every -> (spec or None, [(key or None, problem)])."""
    if v is None:
        return None, []
    if not isinstance(v, dict) or not v or set(v) - {"iterations", "minutes"}:
        return None, [(None, f"config.save_every must be {SAVE_SHAPE}, got {v!r}")]
    problems = []
    if "iterations" in v and not _count(v["iterations"]):
        problems.append(("iterations", f"config.save_every.iterations must be an integer >= 1, "
                                       f"got {v['iterations']!r}"))
    m = v.get("minutes", 1)
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m < 1e6:
        problems.append(("minutes", f"config.save_every.minutes must be a number of minutes above 0, got {m!r}"))
    return (None if problems else dict(v)), problems


def option(text):
    """`train --save-every`: N (iterations) or Nm (minutes, e.g. 5m or 2.5m) -> config.save_every's spec;
    ValueError when it is neither (argparse's type check uses this too)."""
    m = re.fullmatch(r"\s*(\d+)\s*|\s*(\d+(?:\.\d+)?)\s*m(?:in)?\s*", str(text))
    spec = ({"iterations": int(m.group(1))} if m.group(1) else {"minutes": float(m.group(2))}) if m else None
    if spec is None or parse_save_every(spec)[1]:
        raise ValueError(f"--save-every takes N iterations (e.g. 500) or M minutes (e.g. 5m), got {text!r}")
    return spec


def kept(run, spec, epochs):
    """The epoch numbers among `epochs` that `spec` keeps (the last one always)."""
    epochs = sorted(epochs)
    keep = set(epochs[-1:])
    if not spec or spec == "last":
        return keep
    if "every" in spec:
        keep |= {e for e in epochs if e % spec["every"] == 0}
    if "best" in spec:
        name, k = spec["best"]["score"], spec["best"]["k"]
        scores = {int(i): s for i, s in read_series(series_path(run, name)) if int(i) in epochs}
        ranked = sorted(scores, key=lambda e: (scores[e] if name in LOWER_BETTER else -scores[e], e))
        keep |= set(ranked[:k])
    return keep


class PartialSaves:
    """Decides, after each iteration, whether the epoch in progress is saved to checkpoints/partial."""

    def __init__(self, spec, intervals):
        self.every = spec.get("iterations") if spec else None
        self.seconds = spec["minutes"] * 60 if spec and "minutes" in spec else None
        self.step = 1
        for n in intervals:  # the lcm of the update intervals: a save never splits an accumulation
            self.step = self.step * n // math.gcd(self.step, n)
        self.last, self.wanted = time.monotonic(), False

    def due(self, done_in_epoch, iteration):
        """`done_in_epoch` iterations of this epoch are done, `iteration` of the whole run."""
        if self.every and done_in_epoch % self.every == 0:
            self.wanted = True
        if self.seconds and time.monotonic() - self.last >= self.seconds:
            self.wanted = True
        if self.wanted and iteration % self.step == 0:
            self.wanted, self.last = False, time.monotonic()
            return True
        return False


def newer_partial(run, complete_epoch):
    """The partial save's folder when it continues the last complete epoch, else None."""
    state = checkpoint.peek_partial(run)
    return checkpoint.partial_folder(run) if state and state.get("epoch") == complete_epoch else None
