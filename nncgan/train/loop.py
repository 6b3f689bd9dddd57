"""The training loop: NNC's optimizers in order on each minibatch, the last epoch saved each epoch."""
import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import numpy as np
import nnabla as nn

from .. import hints, run as runs, safeio
from ..builder import build_all
from ..data.batches import iterator, to_batch
from ..errors import NncganError, RunError
from ..limits import derived_seed
from ..eval import hook as epoch_eval
from ..feeds import first_samples
from ..eval.classifier import is_classifier
from ..sampling import Sampler
from . import bar as progress_bar, checkpoint, distributed, keep, monitor, progress, tensorboard
from .ema import EMA, EMA_FILE
from .optimizer import OptimizerStep

SAMPLES_PER_CLASS = 10


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the epoch in progress is abandoned, the last saved one kept."""

    def __init__(self, while_saving=False):
        super().__init__()
        self.while_saving = while_saving


class Diverged(Exception):
    """A loss or a parameter became NaN or Inf; the message names optimizer, network and where."""


def _rng_state(rng):
    name, keys, pos, has_gauss, cached = rng.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_rng_state(rng, state):
    name, keys, pos, has_gauss, cached = state
    rng.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def check_data_size(graph, arrays, batch_size, where):
    """A dataset smaller than one batch trains nothing: refused before any run folder is made."""
    from ..data.samples import length_of
    n = length_of(arrays)
    if n < batch_size:
        raise RunError(f"{where}: the dataset {graph.dataset.name} has {n} training sample(s), fewer than one "
                       f"batch of {batch_size}; lower config.batch_size (--batch-size {max(1, n)}) or use more data")


def check_batch_fits(graph):
    """`nncgan check`: a batch larger than the dataset is refused. A CSV dataset's rows are
    counted (without reading its images); a built-in one's size is known; others (image folders,
    derived sets) are counted when `train` loads them, still before any run folder is made."""
    name, batch = graph.dataset.name, graph.config.batch_size
    n = graph.dataset.train_size()
    if n is None:
        return
    if n < batch:
        raise RunError(f"{graph.path}: the dataset {name} has {n} training sample(s), fewer than one batch of "
                       f"{batch} (config.batch_size); lower the batch size or use more data")


_PRELOADED = {}  # (dataset, dir, limit) -> arrays that load_data read for the train() that follows


def load_data(graph, data_dir=None, log=print, limit_samples=None):
    """The training split of the graph's dataset, checked to hold at least one batch (`train`
    calls this before making the run folder; the training then uses these arrays)."""
    arrays = graph.dataset.load("train", data_dir, log=log, limit=limit_samples)
    check_data_size(graph, arrays, graph.config.batch_size, graph.path)
    _PRELOADED.clear()
    _PRELOADED[(graph.dataset, data_dir, limit_samples)] = arrays
    return arrays


def train(graph, run, *, max_epoch=None, resume=False, data_dir=None, log=print, quiet=False, evaluate=True,
          comm=distributed.SINGLE, limit_samples=None, limit_iterations=None):
    """Train `graph` in run folder `run` up to `max_epoch` epochs; returns the final state.

    With `evaluate`, each epoch is scored (nncgan.eval.hook) when a trained classifier fits.
    `comm` (train/distributed.py): this process' rank among data-parallel processes.
    `limit_samples`, `limit_iterations`: quick runs on the first N samples, N iterations per epoch."""
    cfg = graph.config
    max_epoch = max_epoch or cfg.max_epoch
    info = graph.dataset
    arrays = _PRELOADED.pop((info, data_dir, limit_samples), None)
    if arrays is None:
        arrays = info.load("train", data_dir, log=log, limit=limit_samples)
    info.check_labels(arrays, graph.label_classes())  # before any training
    check_data_size(graph, arrays, cfg.batch_size, graph.path)

    nn.clear_parameters()
    # Several ranks: each builds its slice of the global batch; same rng, same data order as one process.
    nets, rng = build_all(graph, cfg.batch_size, cfg.seed, comm)
    steps = [OptimizerStep(o, nets[o.network], comm if comm.size > 1 else None) for o in graph.optimizers]
    solvers = {k: s for step in steps for k, s in step.solvers.items()}
    sampler = _tile_sampler(graph)
    # An image-to-image executor draws its tiles from the first training samples, the same every epoch.
    tile_feed = first_samples(arrays, sampler.needs, sampler.n, info.images) if sampler and sampler.needs else None
    ema = EMA.for_graph(graph, nets)
    monitor_pass = monitor.MonitorPass(graph, info.limited(limit_samples), data_dir, log) if cfg.monitor else None

    # `nncgan runs` tells a run still training from one whose process died by this pid.
    runs.update_info(run, status="running", max_epoch=max_epoch, pid=os.getpid(), host=socket.gethostname())
    state = {"epoch": 0, "iteration": 0, "losses": {}}
    partial = None  # the epoch in progress a partial save holds (train/keep.py)
    if resume:
        folder = keep.newer_partial(run, (checkpoint.peek_state(run) or {}).get("epoch", 0))
        if folder is None and checkpoint.partial_folder(run).is_dir():
            log(f"nncgan: {checkpoint.partial_folder(run)} is damaged or older than the last complete epoch; "
                f"not used")
        state = checkpoint.load(run, solvers, folder)
        partial = state.pop("partial", None)
        _set_rng_state(rng, state["rng"])
        if ema is not None:
            saved = (folder or checkpoint.latest(run)) / EMA_FILE
            if saved.is_file():
                ema.load(saved)
            else:
                log(f"{run}: the saved epoch has no {EMA_FILE}; the average starts from its parameters")
        log(f"resuming {run} after epoch {state['epoch']}"
            + (f", at iteration {partial['done']} of epoch {state['epoch'] + 1}" if partial else ""))
        safeio.fault("resume-loaded")
    if state["epoch"] >= max_epoch:
        done = state["epoch"]
        log(f"{run} has already trained {done} epochs; "
            + (f"--epochs {max_epoch} asks for fewer" if done > max_epoch else "that is all it was asked for")
            + f", so there is nothing to do (--epochs N with N above {done} trains more)")
        runs.update_info(run, status="finished", max_epoch=done)
        return state
    di, iters = iterator(arrays, cfg.batch_size, cfg.seed, first_epoch=state["epoch"])
    if limit_iterations and limit_iterations < iters:
        log(f"nncgan: --limit-iterations {limit_iterations}: {limit_iterations} of {iters} iterations per epoch")
        iters = limit_iterations
    else:
        limit_iterations = None
    for s in steps:  # Polynomial/Cosine run over the graph's whole training, as NNC's max_iter
        s.set_schedule(iters, cfg.max_epoch)
    evaluator = epoch_eval.for_training(graph, run, sampler, data_dir or graph.dataset.dir, log,
                                        resume_epoch=state["epoch"]) if evaluate and comm.writes else None
    monitors = progress.LossMonitors(run, [s.opt.name for s in steps] + [t for s in steps for t in s.term_names],
                                     max(1, iters // 10),
                                     resume_from=state["iteration"] - 1 if resume else None)
    if partial:  # the points not yet averaged into a line of the series
        monitors.restore(partial["monitors"])
    saves = keep.PartialSaves(cfg.save_every, [o.update_interval for o in graph.optimizers])
    if cfg.save_every and comm.size > 1:
        log("nncgan: config.save_every is not used with several processes: each epoch is saved when complete")
        saves = None
    board = None
    if comm.writes:  # TensorBoard events beside the monitors (train/tensorboard.py)
        board = tensorboard.Board(run, graph.text, state["iteration"] if resume else None)
        monitors = tensorboard.Tee(monitors, board)

    saved = state["epoch"]  # the last epoch on disk: what a stop keeps
    with _stop_on_signals(comm) as signals:
        try:
            for epoch in range(state["epoch"] + 1, max_epoch + 1):
                if limit_iterations:  # each epoch's first batches of its own order: resumable
                    di, _ = iterator(arrays, cfg.batch_size, cfg.seed, first_epoch=epoch - 1)
                started = time.perf_counter()

                def save_partial(done, sums):
                    with signals.deferred():
                        checkpoint.save_partial(run, solvers, {
                            **state, "rng": _rng_state(rng),
                            "partial": {"done": done, "sums": sums, "monitors": plain.position(),
                                        "seconds": round(time.perf_counter() - started, 2)}},
                            extra={EMA_FILE: ema.save} if ema is not None else None)
                plain = getattr(monitors, "monitors", monitors)  # under a Tee
                if partial:
                    started -= partial["seconds"]
                    for _ in range(partial["done"]):  # the epoch's order, from (seed, epoch), up to where it was
                        di.next()
                sums = _train_epoch(steps, di, iters, rng, state, monitors, info.images,
                                    f"epoch {epoch}/{max_epoch}", quiet, ema=ema, comm=comm,
                                    resumed=partial, save=save_partial if saves and comm.writes else None,
                                    saves=saves)
                partial = None
                monitors.flush(state["iteration"] - 1)
                if monitor.due(cfg.monitor, epoch):  # NNC's monitor pass, before the save as nnabla_cli
                    log(f"epoch {epoch} monitors: " + ", ".join(f"{k} {v:.4f}" for k, v in monitor_pass(epoch).items()))
                state.update(epoch=epoch, rng=_rng_state(rng))
                state.setdefault("seconds", {})[str(epoch)] = round(time.perf_counter() - started, 2)
                state["losses"][str(epoch)] = {k: v / iters for k, v in sums.items()}
                bad = _nonfinite(nn.get_parameters(grad_only=False))  # never save a NaN epoch
                if bad:
                    raise Diverged(f"{bad} at the end of epoch {epoch}")
                if comm.writes:  # only rank 0 writes the run
                    with signals.deferred():
                        kw = {"extra": {EMA_FILE: ema.save}} if ema is not None else {}
                        if cfg.keep != "last":  # config.keep: older epochs kept too (train/keep.py)
                            kw["keep"] = lambda epochs: keep.kept(run, cfg.keep, epochs)
                        checkpoint.save(run, epoch, solvers, state, **kw)
                comm.barrier()  # no rank goes on (and may die, taking rank 0 with it) mid-save
                saved = epoch
                if not comm.writes:
                    continue
                try:
                    with ema.swapped() if ema is not None else contextlib.nullcontext():  # tiles from the average
                        _epoch_outputs(run, graph, sampler, epoch, [s.opt.name for s in steps], iters,
                                       tile_feed)
                except RunError as e:  # safeio's message names the file and why
                    raise RunError(f"epoch {epoch} is saved in {run}, but {e}") from None
                log(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in state["losses"][str(epoch)].items())
                    + f" in {progress.duration(state['seconds'][str(epoch)])}  (saved {run})")
                runs.update_info(run, epoch_seconds=state["seconds"])
                if board is not None:
                    board.epoch(epoch, state["losses"][str(epoch)], state["seconds"][str(epoch)],
                                Path(run) / progress.SAMPLES_DIR / f"epoch_{epoch:04d}.png")
                if evaluator is not None:
                    with ema.swapped() if ema is not None else contextlib.nullcontext():
                        scores = evaluator(epoch)
                    if board is not None:
                        board.scores(epoch, scores)
        except (Interrupted, distributed.Stopped) as e:
            runs.update_info(run, status="interrupted")
            kept = state["epoch"] if e.while_saving else saved  # the save finishes before the signal
            part = checkpoint.peek_partial(run) if comm.writes else None
            part = part if part and part.get("epoch") == kept else None  # a save inside the epoch stopped
            if not kept and not part:
                again = hints.again(["train", graph.path])
                if "--out" in hints.argv() and "--restart" not in hints.argv():
                    again += " --restart"  # the folder holds a run with no epoch: started again explicitly
                raise _stopped(f"interrupted during epoch 1, before any epoch was saved in {run}; "
                               f"start it again with: {again}") from None
            when = (f"while saving epoch {kept}, which was finished first" if e.while_saving
                    else f"during epoch {kept + 1}")
            if part:
                when += (f"; its first {part['partial']['done']} iterations are saved in "
                         f"{checkpoint.partial_folder(run)}, where --resume continues")
            raise _stopped(f"interrupted {when}; epoch {kept} is kept in {run}. "
                           f"Resume with: {hints.command('train', graph.path, '--resume', '--out', run)}") from None
        except Diverged as e:
            runs.update_info(run, status="diverged")
            kept = (f"the last good epoch, {saved}, is kept in {run}" if saved
                    else f"no epoch was saved in {run}")
            raise RunError(f"training diverged: {e}; {kept}. {_divergence_advice(graph)}") from None
        except RunError:  # a save that failed (full disk): the run stops, it is not "running"
            with contextlib.suppress(NncganError):
                runs.update_info(run, status="failed")
            raise
        finally:
            if board is not None:
                board.close()
    runs.update_info(run, status="finished" if state["epoch"] >= max_epoch else "stopped",
                     epochs=state["epoch"])
    return state


def _stopped(message):
    """The RunError of a Ctrl-C or SIGTERM: exit status 130, as the shell's convention has it."""
    err = RunError(message)
    err.exit_code = 130
    return err


def _divergence_advice(graph):
    """What to change: batch normalisation of single samples is a cause of its own."""
    bn = sorted({l.name for net in graph.networks.values() for l in net.layers if l.type == "BatchNormalization"})
    if graph.config.batch_size == 1 and bn:
        return (f"The batch size is 1: BatchNormalization ({', '.join(bn[:3])}) cannot estimate a variance "
                f"from one sample (its running variance becomes NaN), whatever the learning rate; train with a "
                f"batch size of at least 2 (--batch-size 2)")
    return "Lower the learning rate (or check the data) and train again"


def _train_epoch(steps, di, iters, rng, state, monitors, images, desc, quiet, ema=None, comm=distributed.SINGLE,
                 resumed=None, save=None, saves=None):
    """One epoch; `resumed`: a partial save's position in it, `save(done, sums)`: a partial save when `saves` says."""
    sums = dict(resumed["sums"]) if resumed else {s.opt.name: 0.0 for s in steps}
    bar = progress_bar.make(iters, desc, quiet, start=resumed["done"] if resumed else 0)
    short, room = progress_bar.short_names(list(sums)), progress_bar.room(desc, iters)
    start, seen = time.perf_counter(), 0
    for i in bar:
        batch = to_batch(di.variables, di.next(), images)
        seen += len(next(iter(batch.values())))
        losses = {}
        distributed.die_if_asked(comm, state["iteration"])  # a test hook (NNCGAN_TEST_KILL)
        for s in steps:
            loss = losses[s.opt.name] = s(batch, rng, state["iteration"])
            # Checked after every update, so the message names the optimizer that broke it.
            bad = f"its loss {loss}" if not np.isfinite(loss) else _nonfinite(
                {k: v for k, (v, _) in s.network.trainable.items()})
            if bad:
                raise Diverged(f"optimizer '{s.opt.name}' (network '{s.network.name}') produced {bad} "
                               f"at iteration {i + 1} of {iters} in {desc.split('/')[0]}")
        monitors.add(state["iteration"], {**losses, **{k: v for s in steps for k, v in s.terms.items()}})
        if ema is not None:
            ema.update(state["iteration"])
        state["iteration"] += 1
        for k, v in losses.items():
            sums[k] += v
        if save is not None and i + 1 < iters and saves.due(i + 1, state["iteration"]):
            save(i + 1, sums)
        if i % 10 == 0 or i == iters - 1:
            rate = seen / max(time.perf_counter() - start, 1e-9)
            means = {k: v / (i + 1) for k, v in sums.items()}  # running means, as Keras shows
            bar.set_postfix_str(progress_bar.postfix(means, rate, short, room), refresh=False)
    return sums


def _nonfinite(params):
    """The first parameter that is not finite, as "parameter 'NAME' NaN" (or Inf); else None."""
    with np.errstate(all="ignore"):  # a sum of huge finite values may overflow: then look closer
        for name, var in params.items():
            a = var.d
            if not np.isfinite(a.sum()) and not np.isfinite(a).all():
                return f"parameter '{name}' {'NaN' if np.isnan(a).any() else 'Inf'}"
    return None


def _tile_sampler(graph):
    """The executor network at tile size: one row per label (10 images each), or a 10x10 grid.

    None for a classifier: its executor reads images and draws none."""
    if is_classifier(graph):
        return None
    probe = Sampler(graph, 1)
    rows = probe.classes or 10
    return Sampler(graph, rows * SAMPLES_PER_CLASS)


def _epoch_outputs(run, graph, sampler, epoch, opt_names, iters, feed=None):
    if sampler is not None:
        # The same latents every epoch (a fixed seed), so tiles of successive epochs compare.
        rng = np.random.RandomState(derived_seed(graph.config.seed, 7919))
        rows = sampler.classes or 10
        labels = np.repeat(np.arange(rows), SAMPLES_PER_CLASS) if sampler.conditional else None
        progress.save_samples(run, epoch, sampler.draw(labels, rng, feed=feed), rows, SAMPLES_PER_CLASS, labels)
        progress.save_progress_gif(run)
    progress.save_learning_curve(run, opt_names, iters)


class _stop_on_signals:
    """Turn Ctrl-C and SIGTERM into `Interrupted`, raised between steps of Python code.

    Inside `deferred()` (an epoch being saved) a signal is held until the block ends: a save
    abandoned half-way would throw away an epoch that took minutes to train. Among several ranks
    a signal only raises the rank's stop flag: all stop at the next all-reduce (distributed.Stopped).
    """

    def __init__(self, comm=distributed.SINGLE):
        self.comm = comm

    def __enter__(self):
        self.saving, self.pending = False, None

        def handler(signum, frame):
            if self.comm.size > 1:
                self.comm.stop = True
                return
            if self.saving:
                self.pending = signum
                return
            raise Interrupted()
        self.old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)
        return False

    @contextlib.contextmanager
    def deferred(self):
        self.saving = True
        try:
            yield
        finally:
            self.saving = False
        if self.pending is not None:
            raise Interrupted(while_saving=True)
