"""When the loop saves: each complete epoch (and the older ones config.keep keeps, train/keep.py),
and with config.save_every the epoch in progress (checkpoints/partial). Only rank 0 writes the run;
a signal that arrives during a save waits for it to finish."""
import time

from . import checkpoint, keep
from .ema import EMA_FILE
from .state import rng_state


class Saver:
    def __init__(self, run, model, state, losses, cfg, signals, log=print):
        """`state`: the loop's (saved as it is then); `losses`: the loss monitors (their unwritten
        points go into a partial save); `cfg`: the graph's config (keep, save_every); `signals`:
        stops.on_signals, which defers a signal during a save."""
        self.run, self.model, self.state, self.losses, self.signals = run, model, state, losses, signals
        comm = model.comm
        self.extra = {EMA_FILE: model.ema.save} if model.ema is not None else None
        self.keep = cfg.keep
        self.partials = None
        if cfg.save_every and comm.size > 1:
            log("nncgan: config.save_every is not used with several processes: each epoch is saved when complete")
        elif cfg.save_every and comm.writes:
            self.partials = keep.PartialSaves(cfg.save_every, [s.opt.update_interval for s in model.steps])

    def within(self, started):
        """The partial save after an iteration (None when config.save_every is off): `started`, when
        the epoch began (a resumed epoch's earlier seconds counted)."""
        if self.partials is None:
            return None

        def after(done, sums):
            if self.partials.due(done, self.state["iteration"]):
                with self.signals.deferred():
                    checkpoint.save_partial(self.run, self.model.solvers, {
                        **self.state, "rng": rng_state(self.model.rng),
                        "partial": {"done": done, "sums": sums, "monitors": self.losses.position(),
                                    "seconds": round(time.perf_counter() - started, 2)}}, extra=self.extra)
        return after

    def epoch(self, epoch):
        """Save the complete epoch `epoch` (rank 0); every rank waits until it is on disk. Returns `epoch`."""
        if self.model.comm.writes:  # only rank 0 writes the run
            with self.signals.deferred():
                kw = {"extra": self.extra} if self.extra else {}
                if self.keep != "last":  # config.keep: older epochs kept too (train/keep.py)
                    kw["keep"] = lambda epochs: keep.kept(self.run, self.keep, epochs)
                checkpoint.save(self.run, epoch, self.model.solvers, self.state, **kw)
        self.model.comm.barrier()  # no rank goes on (and may die, taking rank 0 with it) mid-save
        return epoch
