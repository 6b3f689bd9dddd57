"""The steps of an epoch: NNC's optimizers in order on each minibatch, the EMA after them, and a
check for NaN or Inf after every update, so that the message names the optimizer that broke it."""
import time

import numpy as np
import nnabla as nn

from ..builder import build_all
from ..data.batches import to_batch
from . import bar as progress_bar, distributed
from .ema import EMA
from .optimizer import OptimizerStep
from .stops import Diverged


class Model:
    """What the optimizers train: the networks at the batch size (among several ranks, each rank's
    slice of the global batch: same rng, same data order as one process), one OptimizerStep per
    optimizer, their solvers by name, the rng the generators draw from, and the EMA (or None)."""

    def __init__(self, graph, comm=distributed.SINGLE):
        cfg = graph.config
        nn.clear_parameters()
        self.nets, self.rng = build_all(graph, cfg.batch_size, cfg.seed, comm)
        self.steps = [OptimizerStep(o, self.nets[o.network], comm if comm.size > 1 else None)
                      for o in graph.optimizers]
        self.solvers = {k: s for step in self.steps for k, s in step.solvers.items()}
        self.ema = EMA.for_graph(graph, self.nets)
        self.comm = comm

    @property
    def opt_names(self):
        return [s.opt.name for s in self.steps]

    @property
    def series_names(self):
        """Each optimizer's loss and, for a loss of several terms, each term's: the loss monitors."""
        return self.opt_names + [t for s in self.steps for t in s.term_names]

    def set_schedules(self, iters_per_epoch, max_epoch):
        for s in self.steps:  # Polynomial/Cosine run over the graph's whole training, as NNC's max_iter
            s.set_schedule(iters_per_epoch, max_epoch)

    def check_finite(self, where):
        """Diverged when a parameter is NaN or Inf: a NaN epoch is never saved."""
        bad = nonfinite(nn.get_parameters(grad_only=False))
        if bad:
            raise Diverged(f"{bad} {where}")


def train_epoch(model, di, iters, state, monitors, images, desc, quiet=False, resumed=None, after=None):
    """One epoch of `iters` minibatches from `di`; returns each optimizer's summed loss.

    `resumed`: a partial save's position in it; `after(done, sums)`: called after each iteration
    but the last (a partial save when config.save_every says)."""
    sums = dict(resumed["sums"]) if resumed else {name: 0.0 for name in model.opt_names}
    bar = progress_bar.make(iters, desc, quiet, start=resumed["done"] if resumed else 0)
    short, room = progress_bar.short_names(list(sums)), progress_bar.room(desc, iters)
    start, seen = time.perf_counter(), 0
    for i in bar:
        batch = to_batch(di.variables, di.next(), images)
        seen += len(next(iter(batch.values())))
        distributed.die_if_asked(model.comm, state["iteration"])  # a test hook (NNCGAN_TEST_KILL)
        losses = _update(model.steps, batch, model.rng, state["iteration"],
                         where=lambda: f"{i + 1} of {iters} in {desc.split('/')[0]}")
        monitors.add(state["iteration"], {**losses, **{k: v for s in model.steps for k, v in s.terms.items()}})
        if model.ema is not None:
            model.ema.update(state["iteration"])
        state["iteration"] += 1
        for k, v in losses.items():
            sums[k] += v
        if after is not None and i + 1 < iters:
            after(i + 1, sums)
        if i % 10 == 0 or i == iters - 1:
            rate = seen / max(time.perf_counter() - start, 1e-9)
            means = {k: v / (i + 1) for k, v in sums.items()}  # running means, as Keras shows
            bar.set_postfix_str(progress_bar.postfix(means, rate, short, room), refresh=False)
    return sums


def _update(steps, batch, rng, iteration, where):
    """Every optimizer once on `batch`, in NNC's order; {optimizer: loss}. `where()`: the
    iteration, for the message of a divergence."""
    losses = {}
    for s in steps:
        loss = losses[s.opt.name] = s(batch, rng, iteration)
        # Checked after every update, so the message names the optimizer that broke it.
        bad = f"its loss {loss}" if not np.isfinite(loss) else nonfinite(
            {k: v for k, (v, _) in s.network.trainable.items()})
        if bad:
            raise Diverged(f"optimizer '{s.opt.name}' (network '{s.network.name}') produced {bad} "
                           f"at iteration {where()}")
    return losses


def nonfinite(params):
    """The first parameter that is not finite, as "parameter 'NAME' NaN" (or Inf); else None."""
    with np.errstate(all="ignore"):  # a sum of huge finite values may overflow: then look closer
        for name, var in params.items():
            a = var.d
            if not np.isfinite(a.sum()) and not np.isfinite(a).all():
                return f"parameter '{name}' {'NaN' if np.isnan(a).any() else 'Inf'}"
    return None
