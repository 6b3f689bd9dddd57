"""Minibatches through NNabla's data iterator, shuffled per epoch from the run's seed.

The order of epoch e depends only on (seed, e), so a run resumed at an epoch boundary sees
exactly the batches an uninterrupted run would have seen. The data is a dict of arrays held in
memory, or a `samples.Samples` streamed from disk one sample at a time; the order is the same.
"""
import numpy as np
from nnabla.utils.data_iterator import data_iterator
from nnabla.utils.data_source import DataSource

from ..images import as_fed
from .samples import length_of, sample_of, variables_of


class MemorySource(DataSource):
    """Arrays in memory or streamed samples; one epoch = as many whole batches as fit (the remainder is skipped)."""

    def __init__(self, arrays, batch_size, seed, first_epoch=0, shuffle=True):
        super().__init__(shuffle=shuffle)
        self._arrays = arrays
        self._variables = variables_of(arrays)
        self._n = length_of(arrays)
        self._size = (self._n // batch_size) * batch_size
        self._seed, self._epoch = seed, first_epoch - 1  # the iterator's first reset() starts it

    def reset(self):
        # The iterator calls reset once on creation and once per finished epoch.
        self._epoch += 1
        if self._shuffle:
            self._order = np.random.default_rng([self._seed, self._epoch]).permutation(self._n)[:self._size]
            # the independent side of an unpaired set: its own order, from the same (seed, epoch)
            self._order_b = np.random.default_rng([self._seed, self._epoch, 1]).permutation(self._n)[:self._size]
        else:
            self._order = self._order_b = np.arange(self._size)
        super().reset()

    def _get_data(self, position):
        return sample_of(self._arrays, self._order[position], self._order_b[position])


def iterator(arrays, batch_size, seed, first_epoch=0, shuffle=True):
    source = MemorySource(arrays, batch_size, seed, first_epoch, shuffle)
    if source.size == 0:
        raise ValueError(f"the dataset has {source._n} samples, fewer than one batch of {batch_size}")
    di = data_iterator(source, batch_size, with_memory_cache=False, use_thread=False)
    return di, source.size // batch_size


def to_batch(variables, arrays, images):
    """The iterator's tuple -> {variable: float array}, images scaled to [0, 1]."""
    return {v: as_fed(a, v in images) for v, a in zip(variables, arrays)}
