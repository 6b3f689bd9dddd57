"""What a run shows each epoch: loss series (nnabla monitors), sample tiles, their GIF, a learning curve."""
import contextlib
import errno
import os
import time
from pathlib import Path

import numpy as np
from nnabla.monitor import Monitor, MonitorSeries

from .. import safeio
from ..images import save_tile

MONITOR_DIR = "monitor"


def eval_series_path(run, name):
    """A per-epoch score's series (config.eval), beside the loss series."""
    return Path(run) / MONITOR_DIR / f"eval-{name}.series.txt"


SAMPLES_DIR = "samples"
CURVE = "learning_curve.png"
GIF = "progress.gif"
GIF_FRAME_MS = 400


def series_file(run, opt_name):
    return Path(run) / MONITOR_DIR / f"{opt_name}-loss.series.txt"  # MonitorSeries' naming


class LossMonitors:
    """One nnabla MonitorSeries per optimizer: the mean loss of every `interval` iterations."""

    def __init__(self, run, opt_names, interval, resume_from=None):
        monitor = Monitor(str(Path(run) / MONITOR_DIR))
        if resume_from is None:  # a new run: MonitorSeries starts each file empty
            self.series = {n: MonitorSeries(f"{n} loss", monitor, interval=interval, verbose=False)
                           for n in opt_names}
            return
        # Resumed: the points logged after the saved epoch are dropped, the ones before kept. The
        # kept lines go to a temporary file renamed over the series, so a kill at any moment leaves
        # either the old history or the new one, never an emptied file; MonitorSeries (which
        # empties its file when given one) is pointed at it only afterwards.
        self.series = {n: resumed_series(series_file(run, n), f"{n} loss", interval, resume_from)
                       for n in opt_names}

    def add(self, iteration, losses):
        for name, value in losses.items():
            self.series[name].add(iteration, value)

    def position(self):
        """What a partial save keeps of each series: the points not yet written, and from where."""
        return {n: {"buf": [float(v) for v in s.buf], "flush_at": s.flush_at} for n, s in self.series.items()}

    def restore(self, position):
        for n, p in position.items():
            if n in self.series:
                self.series[n].buf, self.series[n].flush_at = list(p["buf"]), p["flush_at"]

    def flush(self, iteration):
        """Write the mean of the points since the last write at `iteration` (an epoch's end): without
        it, the iterations after the epoch's last full interval would be missing from the curve."""
        for s in self.series.values():
            if s.buf and s.sp is not None:
                with open(s.sp, "a") as fd:
                    print("{} {:g}".format(iteration, np.mean(s.buf)), file=fd)  # MonitorSeries' format
            s.flush_at, s.buf = iteration, []


def resumed_series(path, label, interval, keep_upto):
    """A MonitorSeries appending to `path`, which keeps its points up to index `keep_upto`.

    The kept lines are written to a temporary file renamed over the series, so a kill at any
    moment leaves the old history or the new one, never an emptied file (MonitorSeries, given
    a monitor, would empty the file first); a half-written line is dropped."""
    safeio.write_text(path, "".join(f"{i} {v:g}\n" for i, v in _points(path) if i <= keep_upto),
                      what=f"the series {path}")
    safeio.fault("resume-series")
    s = MonitorSeries(label, None, interval=interval, verbose=False)
    s.sp = str(path)
    s.flush_at = keep_upto  # count the first interval from where the run resumes
    return s


def _points(path):
    """(iteration, value) of each whole line of a series file; a half-written or garbled line
    (a kill mid-write, a damaged file) is skipped, and a missing or unreadable file has none."""
    try:
        text = safeio.read_text(path, limit=256 << 20) if Path(path).exists() else ""
    except (OSError, ValueError):
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            i, v = int(parts[0]), float(parts[1])
        except ValueError:
            continue
        out.append((i, v))
    return out


def read_series(path):
    rows = _points(path)
    return np.array(rows, dtype=float) if rows else np.zeros((0, 2))


def loss_series(run, order=()):
    """The run's loss series that hold points, {name: rows of (iteration, loss)}: the names in
    `order` first (the optimizers, as they train), then the others (loss terms) by name."""
    suffix = "-loss.series.txt"
    series = {p.name[:-len(suffix)]: read_series(p) for p in sorted((Path(run) / MONITOR_DIR).glob("*" + suffix))}
    order = list(order)
    ranked = sorted(series, key=lambda n: (order.index(n) if n in order else len(order), n))
    return {n: series[n] for n in ranked if len(series[n])}


def learning_curve(run, per_epoch=None, order=(), title=None):
    """The learning curve, one matplotlib figure for learning_curve.png and `nncgan report` alike:
    each loss series (loss_series) against epochs, or iterations when `per_epoch` (iterations per
    epoch) is unknown; None when there is no point yet. The caller closes it."""
    series = loss_series(run, order)
    if not series:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for name, s in series.items():
        x = (s[:, 0] + 1) / per_epoch if per_epoch else s[:, 0]
        ax.plot(x, s[:, 1], label=name, gid=f"curve-{name}", marker="." if len(s) < 30 else None)
    ax.set_xlabel("epoch" if per_epoch else "iteration")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def save_learning_curve(run, opt_names, iters_per_epoch):
    """learning_curve.png: the learning curve (learning_curve), from the monitor series."""
    import matplotlib.pyplot as plt
    fig = learning_curve(run, iters_per_epoch, opt_names, title=Path(run).name)
    if fig is None:
        return
    try:
        with safeio.atomic_path(Path(run) / CURVE) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def save_samples(run, epoch, images, rows, cols, labels=None):
    """samples/epoch_NNNN.png; a conditional graph's tile says each row's label in a left margin."""
    from ..images import row_captions
    d = Path(run) / SAMPLES_DIR
    d.mkdir(exist_ok=True)
    return save_tile(images, d / f"epoch_{epoch:04d}.png", rows, cols, info={"epoch": epoch},
                     row_labels=row_captions(labels, rows, cols))


def save_progress_gif(run):
    """samples/progress.gif: the epoch tiles in order, one frame each (the last one held longer)."""
    from PIL import Image
    d = Path(run) / SAMPLES_DIR
    paths = sorted(d.glob("epoch_*.png"))
    if not paths:
        return None
    frames = []
    for p in paths:
        try:  # an old tile that cannot be read (truncated, damaged) is left out of the GIF
            with safeio.open_regular(p) as f, Image.open(f) as im:
                frames.append(_captioned(im.convert("L"), f"epoch {int(p.stem.split('_')[1])}"))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    if not frames:
        return None
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [GIF_FRAME_MS * 5]
    with safeio.atomic_path(d / GIF) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return d / GIF


def duration(seconds):
    """12.3s, 4m05s, 1h02m"""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


CAPTION_PX = 12


def _captioned(image, text):
    """The image under a strip saying `text` (which epoch a GIF frame is)."""
    from PIL import Image, ImageDraw
    out = Image.new("L", (image.width, image.height + CAPTION_PX), 255)
    out.paste(image, (0, CAPTION_PX))
    ImageDraw.Draw(out).text((2, 0), text, fill=0)
    return out


def file_log(path, echo=print):
    """A log function that also appends each message, time-stamped, to `path` (unattended runs)."""
    from ..errors import RunError
    try:
        if os.path.exists(path) and not safeio.is_regular(path):  # a FIFO would block every epoch
            raise OSError(errno.EINVAL, "not a regular file")
        open(path, "a", encoding="utf-8").close()
    except OSError as e:
        raise RunError(f"cannot write the log file {path}: {e.strerror}") from None

    failed = []

    def log(msg):
        echo(msg)
        if failed:
            return
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
        except OSError as e:  # a full disk: the run goes on, said once, on the terminal only
            failed.append(e)
            echo(f"nncgan: warning: cannot append to the log file {path} ({safeio.reason(e)}); "
                 f"messages go to the terminal only from now on")
    return log


@contextlib.contextmanager
def log_ending(path, run):
    """The log file's last line says how the run ended: finished, stopped, interrupted, diverged or error."""
    if not path:
        yield
        return
    from .. import run as runs
    from ..errors import NncganError
    try:
        write = file_log(path, echo=lambda msg: None)  # the terminal has its own message
    except NncganError:  # the log file cannot be written (a full disk): the run's own logger said so
        yield
        return

    def status(default):
        try:
            s = runs.read_info(run).get("status")
        except Exception:  # the run folder itself may be what failed
            return default
        return s if s in ("finished", "stopped", "interrupted", "diverged") else default
    try:
        yield
    except BaseException as e:
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else status("error")
        write(f"nncgan: run ended: {why}" + (f": {e}" if str(e) else ""))
        raise
    write(f"nncgan: run ended: {status('finished')}")
