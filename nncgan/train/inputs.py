"""The training split the loop reads: loaded once (before the run folder is made), limited and
checked; and the batches of each epoch, in the order (seed, epoch) fixes, so that a resumed epoch
sees the very batches an unbroken run would."""
from collections import namedtuple

from ..data.batches import iterator
from ..data.samples import length_of
from ..errors import RunError

# arrays: the samples; info: the dataset (a DatasetSpec: info.images are 0-255 images); dir: the data folder;
# limit: --limit-samples (the monitor pass reads the same first N)
TrainingData = namedtuple("TrainingData", "arrays info dir limit")


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
    n = graph.dataset.train_size()
    if n is None:
        return
    if n < batch:
        raise RunError(f"{graph.path}: the dataset {name} has {n} training sample(s), fewer than one batch of "
                       f"{batch} (config.batch_size); lower the batch size or use more data")


_PRELOADED = {}  # (dataset, dir, limit) -> arrays that load_data read for the train() that follows


def load_data(graph, data_dir=None, log=print, limit_samples=None):
    """The training split of the graph's dataset, checked to hold at least one batch (`train`
    calls this before making the run folder; the training then uses these arrays)."""
    arrays = graph.dataset.load("train", data_dir, log=log, limit=limit_samples)
    check_data_size(graph, arrays, graph.config.batch_size, graph.path)
    _PRELOADED.clear()
    _PRELOADED[(graph.dataset, data_dir, limit_samples)] = arrays
    return arrays


def training_data(graph, data_dir=None, log=print, limit_samples=None):
    """The training split (what load_data read, else loaded now; its first `limit_samples`), checked
    against the graph's labels and batch size before any training."""
    info = graph.dataset
    arrays = _PRELOADED.pop((info, data_dir, limit_samples), None)
    if arrays is None:
        arrays = info.load("train", data_dir, log=log, limit=limit_samples)
    info.check_labels(arrays, graph.label_classes())
    check_data_size(graph, arrays, graph.config.batch_size, graph.path)
    return TrainingData(arrays, info, data_dir, limit_samples)


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
