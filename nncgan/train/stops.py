"""How a training run stops before its last epoch, and what it says then.

Ctrl-C or SIGTERM: the epoch in progress is abandoned (a save in progress finishes first), the
last saved epoch kept, the exit status 130; a loss or parameter that becomes NaN or Inf: the
last good epoch kept, with advice; a save that fails (full disk): the run is "failed". Each
leaves run.json's status and one message saying what is kept and how to go on.
"""
import contextlib
import signal

from .. import hints, run as runs
from ..errors import NncganError, RunError
from . import checkpoint, distributed


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the epoch in progress is abandoned, the last saved one kept."""

    def __init__(self, while_saving=False):
        super().__init__()
        self.while_saving = while_saving


class Diverged(Exception):
    """A loss or a parameter became NaN or Inf; the message names optimizer, network and where."""


class on_signals:
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


class Saved:
    """The last epoch on disk, which the loop advances after each save: what a stop keeps."""

    def __init__(self, epoch):
        self.epoch = epoch


@contextlib.contextmanager
def ending(run, graph_path, advice, state, writes=True):
    """Around the epochs: a stop sets run.json's status and becomes one RunError saying what is
    kept (`state`: the loop's; `advice`: what to change when it diverges; `writes`: rank 0)."""
    saved = Saved(state["epoch"])
    try:
        yield saved
    except (Interrupted, distributed.Stopped) as e:
        runs.update_info(run, status="interrupted")
        kept = state["epoch"] if e.while_saving else saved.epoch  # the save finishes before the signal
        raise interrupted(run, graph_path, kept, e.while_saving, writes) from None
    except Diverged as e:
        runs.update_info(run, status="diverged")
        kept = (f"the last good epoch, {saved.epoch}, is kept in {run}" if saved.epoch
                else f"no epoch was saved in {run}")
        raise RunError(f"training diverged: {e}; {kept}. {advice}") from None
    except RunError:  # a save that failed (full disk): the run stops, it is not "running"
        with contextlib.suppress(NncganError):
            runs.update_info(run, status="failed")
        raise


def interrupted(run, graph_path, kept, while_saving, writes=True):
    """The RunError of a Ctrl-C or SIGTERM after epoch `kept`: how to resume (or start again)."""
    part = checkpoint.peek_partial(run) if writes else None
    part = part if part and part.get("epoch") == kept else None  # a save inside the epoch stopped
    if not kept and not part:
        again = hints.again(["train", graph_path])
        if "--out" in hints.argv() and "--restart" not in hints.argv():
            again += " --restart"  # the folder holds a run with no epoch: started again explicitly
        return stopped(f"interrupted during epoch 1, before any epoch was saved in {run}; "
                       f"start it again with: {again}")
    when = (f"while saving epoch {kept}, which was finished first" if while_saving
            else f"during epoch {kept + 1}")
    if part:
        when += (f"; its first {part['partial']['done']} iterations are saved in "
                 f"{checkpoint.partial_folder(run)}, where --resume continues")
    return stopped(f"interrupted {when}; epoch {kept} is kept in {run}. "
                   f"Resume with: {hints.command('train', graph_path, '--resume', '--out', run)}")


def stopped(message):
    """The RunError of a Ctrl-C or SIGTERM: exit status 130, as the shell's convention has it."""
    err = RunError(message)
    err.exit_code = 130
    return err


def divergence_advice(graph):
    """What to change: batch normalisation of single samples is a cause of its own."""
    bn = sorted({l.name for net in graph.networks.values() for l in net.layers if l.type == "BatchNormalization"})
    if graph.config.batch_size == 1 and bn:
        return (f"The batch size is 1: BatchNormalization ({', '.join(bn[:3])}) cannot estimate a variance "
                f"from one sample (its running variance becomes NaN), whatever the learning rate; train with a "
                f"batch size of at least 2 (--batch-size 2)")
    return "Lower the learning rate (or check the data) and train again"
