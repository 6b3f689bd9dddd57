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
    return _limited(images, labels)


def _limited(images, labels):
    # For tests that run the real command in a subprocess (e.g. killing it mid-save) and for
    # bench/zoo.py --quick: a few samples make an epoch last well under a second.
    # `train` reads it as --limit-samples, saying so.
    limit = int(os.environ.get("NNCGAN_LIMIT_SAMPLES") or 0)
    if limit > 0:
        images, labels = images[:limit], labels[:limit]
    # Kept as uint8; the batcher scales to [0, 1] (NNC's ImageNormalization: pixel/255).
    return {"x": images[:, None, :, :], "y": labels[:, None]}


def _load_fashion_mnist(split, data_dir=None, log=print):
    from .fashion_mnist import load_fashion_mnist
    images, labels = load_fashion_mnist(split, data_dir, log=log)
    return _limited(images, labels)


DATASETS = {
    "mnist": DatasetInfo("mnist", {"x": (1, 28, 28), "y": (1,)}, 10, _load_mnist, ("x",),
                         "MNIST digits: x image (1,28,28) in [0,1], y label 0-9"),
    "fashion-mnist": DatasetInfo("fashion-mnist", {"x": (1, 28, 28), "y": (1,)}, 10, _load_fashion_mnist, ("x",),
                                 "Fashion-MNIST: x image (1,28,28) in [0,1], y label 0-9 (T-shirt/top ... Ankle boot)"),
}


# File datasets (an NNC CSV, image folders) are described when the graph is parsed, from the
# files themselves, and kept here under their name ("csv:/abs/path") for the trainer.
FILE_KINDS = ("csv", "folder")
_FILE_DATASETS = {}


def file_dataset(kind, path, **options):
    """DatasetInfo of a file dataset, read from its files now; raises DataError naming the file."""
    if kind == "csv":
        from .csv_dataset import dataset_info
    elif kind == "folder":
        from .folders import dataset_info
    else:
        raise ValueError(f"unknown file dataset kind {kind!r}")
    info = dataset_info(path, **options)
    _FILE_DATASETS[info.name] = info
    return info


def derived_dataset(base, spec):
    """DatasetInfo of built-in `base` with `derive: spec` (nncgan.data.derived); raises DataError."""
    from .derived import dataset_info
    info = dataset_info(base, spec)
    _FILE_DATASETS[info.name] = info
    return info


def resolve(name):
    """The dataset a parsed graph names: built in, derived, or a file dataset described at parse time."""
    if name in DATASETS:
        return DATASETS[name]
    if name in _FILE_DATASETS:
        return _FILE_DATASETS[name]
    base, plus, derive = name.partition("+")
    if plus and base in DATASETS:  # "mnist+downscale,factor=2": the name says it all
        from .derived import spec_of
        return derived_dataset(base, spec_of(derive))
    kind, _, path = name.partition(":")
    if kind == "csv" and path:  # a CSV carries all it needs in its own files
        return file_dataset(kind, path)
    from ..errors import DataError
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
