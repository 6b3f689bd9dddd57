"""The training loop: NNC's optimizers in order on each minibatch, the last epoch saved each epoch.

    set-up       inputs.py (the training split, its batches), step.Model (networks, solvers, rng, EMA),
                 state.py (a fresh state, or a resumed one, bit for bit), outputs.Tiles
    each epoch   step.train_epoch (every optimizer on every minibatch; partial saves, saving.py)
    its end      NNC's monitor pass (monitor.py), saving.Saver.epoch (config.keep), then on rank 0
                 outputs.Outputs.epoch (tiles, learning curve, log, TensorBoard, per-epoch scores)
    stops        stops.py: Ctrl-C or SIGTERM (exit status 130), a divergence, a failed save
"""
import contextlib
import os
import socket
import time

from .. import run as runs
from ..eval import hook as epoch_eval
from . import distributed, inputs, monitor, outputs, saving, state as run_state, step, stops
# Other modules' names for what lives in the loop's parts.
from .inputs import _PRELOADED, check_batch_fits, check_data_size, load_data  # noqa: F401
from .stops import Diverged, Interrupted  # noqa: F401


def train(graph, run, *, max_epoch=None, resume=False, data_dir=None, log=print, quiet=False, evaluate=True,
          comm=distributed.SINGLE, limit_samples=None, limit_iterations=None):
    """Train `graph` in run folder `run` up to `max_epoch` epochs; returns the final state.

    With `evaluate`, each epoch is scored (nncgan.eval.hook) when a trained classifier fits.
    `comm` (train/distributed.py): this process' rank among data-parallel processes.
    `limit_samples`, `limit_iterations`: quick runs on the first N samples, N iterations per epoch."""
    cfg = graph.config
    max_epoch = max_epoch or cfg.max_epoch
    data = inputs.training_data(graph, data_dir, log, limit_samples)
    model = step.Model(graph, comm)
    tiles = outputs.Tiles.for_graph(graph, data)
    monitor_pass = monitor.MonitorPass(graph, data.info.limited(data.limit), data.dir, log) if cfg.monitor else None

    # `nncgan runs` tells a run still training from one whose process died by this pid.
    runs.update_info(run, status="running", max_epoch=max_epoch, pid=os.getpid(), host=socket.gethostname())
    state, partial = run_state.resume(run, model, log) if resume else (run_state.fresh(), None)
    if state["epoch"] >= max_epoch:
        return run_state.nothing_to_do(run, state, max_epoch, log)
    epochs = inputs.Epochs(data.arrays, cfg.batch_size, cfg.seed, state["epoch"], limit_iterations, log)
    model.set_schedules(epochs.iters, cfg.max_epoch)
    evaluator = epoch_eval.for_training(graph, run, tiles and tiles.sampler, data.dir, log,
                                        resume_epoch=state["epoch"]) if evaluate and comm.writes else None
    shown = outputs.Outputs(run, model, tiles, epochs.iters, state, resume, partial, evaluator, graph.text, log)
    signals = stops.on_signals(comm)
    saver = saving.Saver(run, model, state, shown.losses, cfg, signals, log)

    with signals, stops.ending(run, graph.path, stops.divergence_advice(graph), state, comm.writes) as saved, \
            contextlib.closing(shown):
        for epoch in range(state["epoch"] + 1, max_epoch + 1):
            started = time.perf_counter() - (partial["seconds"] if partial else 0)
            sums = step.train_epoch(model, epochs.batches(epoch, skip=partial["done"] if partial else 0),
                                    epochs.iters, state, shown.monitors, data.info.images,
                                    f"epoch {epoch}/{max_epoch}", quiet, resumed=partial, after=saver.within(started))
            partial = None
            shown.monitors.flush(state["iteration"] - 1)
            if monitor.due(cfg.monitor, epoch):  # NNC's monitor pass, before the save as nnabla_cli
                log(f"epoch {epoch} monitors: " + ", ".join(f"{k} {v:.4f}" for k, v in monitor_pass(epoch).items()))
            run_state.end_epoch(state, epoch, model.rng, started, sums, epochs.iters)
            model.check_finite(f"at the end of epoch {epoch}")  # never save a NaN epoch
            saved.epoch = saver.epoch(epoch)
            if comm.writes:  # only rank 0 writes the run
                shown.epoch(epoch, state)
    runs.update_info(run, status="finished" if state["epoch"] >= max_epoch else "stopped", epochs=state["epoch"])
    return state
