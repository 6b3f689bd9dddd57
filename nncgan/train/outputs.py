"""What a run shows as it trains, besides its checkpoints: the loss series (NNabla's
MonitorSeries) and TensorBoard's events as it goes; at each epoch's end its tile of samples, the
GIF of them, the learning curve, a log line, run.json's epoch times and the per-epoch scores."""
import contextlib
from pathlib import Path

import numpy as np

from .. import run as runs
from ..errors import RunError
from ..eval.classifier import is_classifier
from ..feeds import first_samples
from ..limits import derived_seed
from ..sampling import Sampler
from . import progress, tensorboard

SAMPLES_PER_CLASS = 10


class Tiles:
    """The executor network at tile size: one row per label (10 images each), or a 10x10 grid, from
    the same latents every epoch (a fixed seed), so that tiles of successive epochs compare."""

    def __init__(self, sampler, seed, feed=None):
        self.sampler, self.seed, self.feed = sampler, seed, feed
        self.rows = sampler.classes or 10

    @classmethod
    def for_graph(cls, graph, data):
        """None for a classifier: its executor reads images and draws none. An image-to-image
        executor draws its tiles from the first training samples, the same every epoch."""
        if is_classifier(graph):
            return None
        rows = Sampler(graph, 1).classes or 10
        sampler = Sampler(graph, rows * SAMPLES_PER_CLASS)
        feed = first_samples(data.arrays, sampler.needs, sampler.n, data.info.images) if sampler.needs else None
        return cls(sampler, graph.config.seed, feed)

    def save(self, run, epoch):
        rng = np.random.RandomState(derived_seed(self.seed, 7919))
        labels = np.repeat(np.arange(self.rows), SAMPLES_PER_CLASS) if self.sampler.conditional else None
        images = self.sampler.draw(labels, rng, feed=self.feed)
        progress.save_samples(run, epoch, images, self.rows, SAMPLES_PER_CLASS, labels)
        progress.save_progress_gif(run)


def epoch_images(run, tiles, epoch, curve_names, iters):
    """samples/epoch_NNNN.png and progress.gif (none for a classifier), and learning_curve.png."""
    if tiles is not None:
        tiles.save(run, epoch)
    progress.save_learning_curve(run, curve_names, iters)


class Outputs:
    """`monitors.add(iteration, losses)` each iteration, `epoch(epoch, state)` at each saved epoch's end
    (rank 0); `close()` closes TensorBoard's writer."""

    def __init__(self, run, model, tiles, iters, state, resumed=False, partial=None, evaluator=None,
                 graph_text="", log=print):
        """`state`: the loop's, as it starts (`resumed`, `partial`: from a save); `evaluator`: the
        per-epoch scores (eval/hook.py) or None; `graph_text`: the graph file, for TensorBoard."""
        self.run, self.model, self.tiles, self.iters, self.log = run, model, tiles, iters, log
        self.evaluator = evaluator
        # the loss series (resumed: the points logged after the saved epoch dropped)
        self.losses = progress.LossMonitors(run, model.series_names, max(1, iters // 10),
                                            resume_from=state["iteration"] - 1 if resumed else None)
        if partial:  # the points not yet averaged into a line of the series
            self.losses.restore(partial["monitors"])
        self.monitors, self.board = self.losses, None
        if model.comm.writes:  # TensorBoard events beside the monitors (train/tensorboard.py)
            self.board = tensorboard.Board(run, graph_text, state["iteration"] if resumed else None)
            self.monitors = tensorboard.Tee(self.losses, self.board)

    def _averaged(self):
        """Tiles and scores are drawn with the EMA's parameters, when there is one."""
        ema = self.model.ema
        return ema.swapped() if ema is not None else contextlib.nullcontext()

    def epoch(self, epoch, state):
        """Epoch `epoch` is saved (rank 0): its tile (from the EMA), the curve, its log line, run.json's
        times, TensorBoard, its scores; a tile that cannot be written still leaves the epoch saved."""
        run, seconds, means = self.run, state["seconds"][str(epoch)], state["losses"][str(epoch)]
        try:
            with self._averaged():
                epoch_images(run, self.tiles, epoch, self.model.opt_names, self.iters)
        except RunError as e:  # safeio's message names the file and why
            raise RunError(f"epoch {epoch} is saved in {run}, but {e}") from None
        self.log(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items())
                 + f" in {progress.duration(seconds)}  (saved {run})")
        runs.update_info(run, epoch_seconds=state["seconds"])
        if self.board is not None:
            self.board.epoch(epoch, means, seconds, Path(run) / progress.SAMPLES_DIR / f"epoch_{epoch:04d}.png")
        if self.evaluator is not None:
            with self._averaged():
                scores = self.evaluator(epoch)
            if self.board is not None:
                self.board.scores(epoch, scores)

    def close(self):
        if self.board is not None:
            self.board.close()
