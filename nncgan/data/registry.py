"""Datasets a graph can name, with the variables (and shapes) each one feeds."""
import os
from dataclasses import dataclass
from typing import Callable, Dict, Tuple


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    variables: Dict[str, Tuple[int, ...]]   # variable -> shape of one sample
    classes: int                            # number of labels in `y` (0 when unlabelled)
    load: Callable                          # (split, data_dir, log) -> {variable: array}
    images: Tuple[str, ...] = ()            # uint8 variables fed as pixel/255 (ImageNormalization)
    doc: str = ""


def _load_mnist(split, data_dir=None, log=print):
    from .mnist import load_mnist
    images, labels = load_mnist(split, data_dir, log=log)
    # For tests that run the real command in a subprocess (e.g. killing it mid-save): a few
    # samples make an epoch last well under a second. Not a user option.
    limit = int(os.environ.get("NNCGAN_LIMIT_SAMPLES") or 0)
    if limit > 0:
        images, labels = images[:limit], labels[:limit]
    # Kept as uint8; the batcher scales to [0, 1] (NNC's ImageNormalization: pixel/255).
    return {"x": images[:, None, :, :], "y": labels[:, None]}


DATASETS = {
    "mnist": DatasetInfo("mnist", {"x": (1, 28, 28), "y": (1,)}, 10, _load_mnist, ("x",),
                         "MNIST digits: x image (1,28,28) in [0,1], y label 0-9"),
}
