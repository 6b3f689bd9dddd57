"""The loop's state, saved with every epoch (state.json): epochs and iterations done, each epoch's
mean losses and seconds, and the generators' rng, so that a resumed run continues bit for bit."""
import time

import numpy as np

from .. import run as runs, safeio
from . import checkpoint, keep
from .ema import EMA_FILE


def fresh():
    return {"epoch": 0, "iteration": 0, "losses": {}}


def rng_state(rng):
    name, keys, pos, has_gauss, cached = rng.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def set_rng_state(rng, state):
    name, keys, pos, has_gauss, cached = state
    rng.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def resume(run, model, log=print):
    """Load the run's last save into `model` (parameters, solvers, rng, EMA); return (state, partial):
    `partial` is the epoch in progress a newer partial save holds (train/keep.py), else None."""
    folder = keep.newer_partial(run, (checkpoint.peek_state(run) or {}).get("epoch", 0))
    if folder is None and checkpoint.partial_folder(run).is_dir():
        log(f"nncgan: {checkpoint.partial_folder(run)} is damaged or older than the last complete epoch; not used")
    state = checkpoint.load(run, model.solvers, folder)
    partial = state.pop("partial", None)
    set_rng_state(model.rng, state["rng"])
    if model.ema is not None:
        saved = (folder or checkpoint.latest(run)) / EMA_FILE
        if saved.is_file():
            model.ema.load(saved)
        else:
            log(f"{run}: the saved epoch has no {EMA_FILE}; the average starts from its parameters")
    log(f"resuming {run} after epoch {state['epoch']}"
        + (f", at iteration {partial['done']} of epoch {state['epoch'] + 1}" if partial else ""))
    safeio.fault("resume-loaded")
    return state, partial


def nothing_to_do(run, state, max_epoch, log=print):
    """A resumed run that has trained `max_epoch` epochs already: said, and marked finished."""
    done = state["epoch"]
    log(f"{run} has already trained {done} epochs; "
        + (f"--epochs {max_epoch} asks for fewer" if done > max_epoch else "that is all it was asked for")
        + f", so there is nothing to do (--epochs N with N above {done} trains more)")
    runs.update_info(run, status="finished", max_epoch=done)
    return state


def end_epoch(state, epoch, rng, started, sums, iters):
    """Epoch `epoch` is trained: its mean losses and seconds (since `started`), and the rng to go on from."""
    state.update(epoch=epoch, rng=rng_state(rng))
    state.setdefault("seconds", {})[str(epoch)] = round(time.perf_counter() - started, 2)
    state["losses"][str(epoch)] = {k: v / iters for k, v in sums.items()}
