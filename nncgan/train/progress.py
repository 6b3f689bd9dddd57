"""What a run shows each epoch: loss series (nnabla monitors), sample tiles, their GIF, a learning curve."""
import contextlib
import os
import time
from pathlib import Path

import numpy as np
from nnabla.monitor import Monitor, MonitorSeries

from ..images import save_tile

MONITOR_DIR = "monitor"
SAMPLES_DIR = "samples"
CURVE = "learning_curve.png"
GIF = "progress.gif"
GIF_FRAME_MS = 400


def series_file(run, opt_name):
    return Path(run) / MONITOR_DIR / f"{opt_name}-loss.series.txt"  # MonitorSeries' naming


class LossMonitors:
    """One nnabla MonitorSeries per optimizer: the mean loss of every `interval` iterations."""

    def __init__(self, run, opt_names, interval, resume_from=None):
        kept = {}
        if resume_from is not None:  # drop points logged after the saved epoch, keep the ones before
            for name in opt_names:
                path = series_file(run, name)
                _truncate_series(path, resume_from)
                kept[path] = path.read_text() if path.is_file() else ""
        monitor = Monitor(str(Path(run) / MONITOR_DIR))
        self.series = {n: MonitorSeries(f"{n} loss", monitor, interval=interval, verbose=False)
                       for n in opt_names}
        for path, text in kept.items():  # MonitorSeries empties its file when created
            path.write_text(text)
        for s in self.series.values():  # count the first interval from where the run resumes
            s.flush_at = resume_from or 0

    def add(self, iteration, losses):
        for name, value in losses.items():
            self.series[name].add(iteration, value)

    def flush(self, iteration):
        """Write the mean of the points since the last write at `iteration` (an epoch's end): without
        it, the iterations after the epoch's last full interval would be missing from the curve."""
        for s in self.series.values():
            if s.buf and s.sp is not None:
                with open(s.sp, "a") as fd:
                    print("{} {:g}".format(iteration, np.mean(s.buf)), file=fd)  # MonitorSeries' format
            s.flush_at, s.buf = iteration, []


def _truncate_series(path, last_iteration):
    if not path.is_file():
        return
    keep = [l for l in path.read_text().splitlines() if l.split() and int(l.split()[0]) <= last_iteration]
    path.write_text("".join(l + "\n" for l in keep))


def read_series(path):
    if not Path(path).is_file():
        return np.zeros((0, 2))
    rows = [l.split() for l in Path(path).read_text().splitlines() if l.strip()]
    return np.array([[float(a), float(b)] for a, b in rows]) if rows else np.zeros((0, 2))


def save_learning_curve(run, opt_names, iters_per_epoch):
    """learning_curve.png: each optimizer's loss against epochs, from the monitor series."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name in opt_names:
        s = read_series(series_file(run, name))
        if len(s):
            ax.plot((s[:, 0] + 1) / iters_per_epoch, s[:, 1], label=name, marker="." if len(s) < 30 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend()
    ax.set_title(f"{Path(run).name}")
    fig.tight_layout()
    tmp = Path(run) / f".{CURVE}.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, Path(run) / CURVE)


def save_samples(run, epoch, images, rows, cols):
    d = Path(run) / SAMPLES_DIR
    d.mkdir(exist_ok=True)
    return save_tile(images, d / f"epoch_{epoch:04d}.png", rows, cols, info={"epoch": epoch})


def save_progress_gif(run):
    """samples/progress.gif: the epoch tiles in order, one frame each (the last one held longer)."""
    from PIL import Image
    d = Path(run) / SAMPLES_DIR
    paths = sorted(d.glob("epoch_*.png"))
    if not paths:
        return None
    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(_captioned(im.convert("L"), f"epoch {int(p.stem.split('_')[1])}"))
    tmp = d / f".{GIF}.tmp"
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [GIF_FRAME_MS * 5]
    frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    os.replace(tmp, d / GIF)
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
        open(path, "a", encoding="utf-8").close()
    except OSError as e:
        raise RunError(f"cannot write the log file {path}: {e.strerror}") from None

    def log(msg):
        echo(msg)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
    return log


@contextlib.contextmanager
def log_ending(path, run):
    """The log file's last line says how the run ended: finished, stopped, interrupted, diverged or error."""
    if not path:
        yield
        return
    from .. import run as runs
    write = file_log(path, echo=lambda msg: None)  # the terminal has its own message

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
