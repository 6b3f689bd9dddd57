"""TensorBoard event files in each run (RUN/tensorboard/), through tensorboardX, the writer NNabla's
own TensorBoard support (nnabla.experimental.tb_graph_writer) builds on:

    loss/<term>        every loss and loss term, every iteration
    epoch/<term>       each epoch's mean loss; epoch/seconds its training time
    score/<name>       each per-epoch score (label accuracy, Frechet distance, test accuracy, ...)
    samples            each epoch's tile, as an image
    graph              the graph file, as text

`tensorboard --logdir runs/` then overlays every run. A resumed run purges what was logged after
its saved epoch, so the curves continue without a fold."""
import numbers
from pathlib import Path

import numpy as np

TB_DIR = "tensorboard"


class Board:
    def __init__(self, run, graph_text, resume_iteration=None):
        from tensorboardX import SummaryWriter
        self.writer = SummaryWriter(logdir=str(Path(run) / TB_DIR), purge_step=resume_iteration,
                                    flush_secs=30)
        if resume_iteration is None:
            self.writer.add_text("graph", "\n".join("    " + l for l in graph_text.splitlines()), 0)

    def add(self, iteration, losses):
        for name, value in losses.items():
            self.writer.add_scalar(f"loss/{name}", float(value), iteration)

    def epoch(self, epoch, means, seconds, tile=None):
        for name, value in means.items():
            self.writer.add_scalar(f"epoch/{name}", float(value), epoch)
        if seconds is not None:
            self.writer.add_scalar("epoch/seconds", float(seconds), epoch)
        if tile is not None and Path(tile).is_file():
            from PIL import Image
            with Image.open(tile) as im:
                self.writer.add_image("samples", np.asarray(im.convert("RGB")), epoch, dataformats="HWC")
        self.writer.flush()

    def scores(self, epoch, result):
        for name, value in (result or {}).items():
            if isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value):
                self.writer.add_scalar(f"score/{name}", float(value), epoch)
        self.writer.flush()

    def close(self):
        self.writer.close()


class Tee:
    """The loss monitors and the board fed together (the loop's `monitors.add`)."""

    def __init__(self, monitors, board):
        self.monitors, self.board = monitors, board

    def add(self, iteration, losses):
        self.monitors.add(iteration, losses)
        self.board.add(iteration, losses)

    def flush(self, iteration):
        self.monitors.flush(iteration)
