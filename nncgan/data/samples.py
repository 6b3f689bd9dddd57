"""What a dataset's load() returns besides a dict of arrays: samples read one at a time.

A dataset that fits in memory is a dict {variable: array (N, ...)}; one that does not is a
``Samples`` object, read per sample by the NNabla data source in ``batches.py``. Both answer
``variables_of``, ``length_of``, ``sample_of`` and ``column_of`` so the trainer and the checks
need not know which they hold.
"""
import os

import numpy as np

from ..errors import DataError

MEMORY_LIMIT_MB = 2048  # above this a dataset is streamed; $NNCGAN_MEMORY_LIMIT_MB overrides


def memory_limit_bytes():
    value = os.environ.get("NNCGAN_MEMORY_LIMIT_MB", MEMORY_LIMIT_MB)
    try:
        return float(value) * 2 ** 20
    except ValueError:
        raise DataError(f"NNCGAN_MEMORY_LIMIT_MB must be a number of megabytes, got {value!r}") from None


def fits_in_memory(n, shapes, dtypes):
    per_sample = sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in zip(shapes, dtypes))
    return n * per_sample <= memory_limit_bytes()


def read_all(n, variables, shapes, dtypes, sample):
    """Every sample read into {variable: (n, ...) array}: the in-memory form of a streamed dataset."""
    arrays = {v: np.empty((n,) + tuple(s), d) for v, s, d in zip(variables, shapes, dtypes)}
    for i in range(n):
        for v, a in zip(variables, sample(i)):
            arrays[v][i] = a
    return arrays


class Samples:
    """Base of streamed datasets: ``variables``, ``len()``, ``sample(i)`` -> tuple of arrays,
    ``column(var)`` -> the whole (N, ...) array of a cheap (non-image) variable."""

    variables = ()

    def __len__(self):
        raise NotImplementedError

    def sample(self, i):
        raise NotImplementedError

    def column(self, var):
        raise NotImplementedError

    def where(self, i):
        return f"sample {i + 1}"


class Arrays(dict):
    """{variable: array} that can say where sample i came from (a CSV row, a file), for errors.

    `independent` names variables drawn in an order of their own (the B side of an unpaired set),
    so that the same A and B images do not meet every epoch.
    """

    def __init__(self, arrays, where=None, independent=()):
        super().__init__(arrays)
        self._where = where
        self.independent = tuple(independent)

    def where(self, i):
        return self._where(i) if self._where else f"sample {i + 1}"


def where_of(data, i, source):
    return data.where(i) if hasattr(data, "where") else f"{source}: sample {i + 1}"


def variables_of(data):
    return tuple(data.variables) if isinstance(data, Samples) else tuple(data)


def length_of(data):
    return len(data) if isinstance(data, Samples) else len(next(iter(data.values())))


def sample_of(data, i, j=None):
    """Sample i; with `j`, the data's independent variables (if any) are taken from sample j."""
    first = data.sample(i) if isinstance(data, Samples) else tuple(a[i] for a in data.values())
    ind = getattr(data, "independent", ())
    if j is None or not ind:
        return first
    other = data.sample(j) if isinstance(data, Samples) else tuple(a[j] for a in data.values())
    return tuple(o if v in ind else f for v, f, o in zip(variables_of(data), first, other))


def column_of(data, var):
    return data.column(var) if isinstance(data, Samples) else data[var]


def check_labels(data, label_classes, source):
    """Every class index fed to a OneHot must lie in 0..n_class-1: the graph decides the classes.

    `label_classes` is {variable: (n_class, who reads it)} (the graph's Graph.label_classes()).
    Called once the data is loaded, before the first iteration, so a bad label stops the run
    before any training rather than as an NNabla error mid-epoch.
    """
    for var, (n_class, who) in label_classes.items():
        if var not in variables_of(data):
            continue
        labels = np.asarray(column_of(data, var)).reshape(length_of(data), -1)[:, 0]
        bad = np.flatnonzero((labels < 0) | (labels >= n_class) | (labels != np.floor(labels)))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{where_of(data, i, source)}: label {labels[i]:g} in '{var}', outside the "
                            f"graph's classes 0..{n_class - 1} ({who}); {bad.size} sample(s) in all")


class _Head(Samples):
    """The first n samples of a streamed dataset."""

    def __init__(self, data, n):
        self._data, self._n = data, min(n, len(data))
        self.variables = data.variables
        self.independent = getattr(data, "independent", ())

    def __len__(self):
        return self._n

    def sample(self, i):
        return self._data.sample(i)

    def column(self, var):
        return self._data.column(var)[:self._n]

    def where(self, i):
        return self._data.where(i)


def head(data, n, log=print, split="train"):
    """The first `n` samples of a dataset (a dict of arrays, Arrays or Samples), announced."""
    total = length_of(data)
    what = "" if split == "train" else f" ({split} split)"
    if n >= total:
        log(f"nncgan: --limit-samples {n}: the dataset{what} has {total} samples, all are used")
        return data
    log(f"nncgan: --limit-samples {n}: {'training on' if split == 'train' else 'monitors read'} the first {n} "
        f"of {total} samples{what}")
    if isinstance(data, Samples):
        return _Head(data, n)
    return Arrays({k: v[:n] for k, v in data.items()}, getattr(data, "_where", None),
                  getattr(data, "independent", ()))
