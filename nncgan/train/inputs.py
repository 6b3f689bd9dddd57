"""The training split the loop reads: loaded once (before the run folder is made), limited and
checked; and the batches of each epoch, in the order (seed, epoch) fixes, so that a resumed epoch
sees the very batches an unbroken run would."""
from collections import namedtuple

from ..data.batches import iterator
from ..data.registry import resolve as resolve_dataset
from ..data.samples import check_labels, length_of
from ..errors import RunError
from . import settings

# Training samples of the built-in datasets: `check` tells a batch larger than these without loading them.
BUILT_IN_SIZES = {"mnist": 60000, "fashion-mnist": 60000}

# arrays: the samples; info: the dataset's registry entry (info.images: 0-255 images); dir: the data folder
TrainingData = namedtuple("TrainingData", "arrays info dir")


def check_data_size(graph, arrays, batch_size, where):
    """A dataset smaller than one batch trains nothing: refused before any run folder is made."""
    n = length_of(arrays)
    if n < batch_size:
        raise RunError(f"{where}: the dataset {graph.dataset.name} has {n} training sample(s), fewer than one "
                       f"batch of {batch_size}; lower config.batch_size (--batch-size {max(1, n)}) or use more data")


def check_batch_fits(graph):
    """`nncgan check`: a batch larger than the dataset is refused. A CSV dataset's rows are
    counted (without reading its images); a built-in one's size is known; others (image folders,
    derived sets) are counted when `train` loads them, still before any run folder is made."""
    name, batch = graph.dataset.name, graph.config.batch_size
    kind, _, path = name.partition(":")
    if name in BUILT_IN_SIZES:
        n = BUILT_IN_SIZES[name]
    elif kind == "csv" and path:
        from ..data.csv_dataset import CsvTable
        n = len(CsvTable(path))
    else:
        return
    if n < batch:
        raise RunError(f"{graph.path}: the dataset {name} has {n} training sample(s), fewer than one batch of "
                       f"{batch} (config.batch_size); lower the batch size or use more data")


_PRELOADED = {}  # (dataset, dir, loader) -> arrays that load_data read for the train() that follows


def load_data(graph, data_dir=None, log=print):
    """The training split of the graph's dataset, checked to hold at least one batch (`train`
    calls this before making the run folder; the training then uses these arrays)."""
    info = resolve_dataset(graph.dataset.name)
    arrays = info.load("train", data_dir or graph.dataset.dir, log=log)
    check_data_size(graph, arrays, graph.config.batch_size, graph.path)
    _PRELOADED.clear()
    _PRELOADED[(graph.dataset.name, data_dir or graph.dataset.dir, info.load)] = arrays
    return arrays


def training_data(graph, data_dir=None, log=print, limit_samples=None):
    """The training split (what load_data read, else loaded now), its first `limit_samples`, checked
    against the graph's labels and batch size before any training."""
    where = data_dir or graph.dataset.dir
    info = resolve_dataset(graph.dataset.name)
    arrays = _PRELOADED.pop((graph.dataset.name, where, info.load), None)
    if arrays is None:
        arrays = info.load("train", where, log=log)
    if limit_samples:
        arrays = settings.head(arrays, limit_samples, log)
    check_labels(graph, arrays, graph.dataset.name)
    check_data_size(graph, arrays, graph.config.batch_size, graph.path)
    return TrainingData(arrays, info, where)


class Epochs:
    """The minibatches of each epoch: `iters` of them (--limit-iterations: the first N of each epoch)."""

    def __init__(self, arrays, batch_size, seed, done, limit_iterations=None, log=print):
        self.arrays, self.batch_size, self.seed = arrays, batch_size, seed
        self.di, self.iters = iterator(arrays, batch_size, seed, first_epoch=done)
        self.limited = bool(limit_iterations and limit_iterations < self.iters)
        if self.limited:
            log(f"nncgan: --limit-iterations {limit_iterations}: {limit_iterations} of {self.iters} "
                f"iterations per epoch")
            self.iters = limit_iterations

    def batches(self, epoch, skip=0):
        """The data iterator at epoch `epoch`'s first batch, or `skip` batches into it (a partial save's)."""
        if self.limited:  # each epoch's first batches of its own order: resumable
            self.di, _ = iterator(self.arrays, self.batch_size, self.seed, first_epoch=epoch - 1)
        for _ in range(skip):  # the epoch's order, from (seed, epoch), up to where it was
            self.di.next()
        return self.di
