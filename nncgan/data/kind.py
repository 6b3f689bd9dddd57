"""What every dataset kind is: the base classes `registry.py` lists its kinds with.

A kind is one class: the `dataset:` key that selects it (`name: mnist`, `csv: PATH`,
`folder: DIR`), the further keys it takes, what its files hold (`describe`, read when the graph
is parsed, so the Inputs are checked against them) and how it reads a split (`read`). This
module imports no kind; the format code (mnist.py, csv_dataset.py, folders.py ...) imports
only `DatasetInfo` from here, so the registry can name them without an import cycle.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset's files hold: described once, from the files (or the kind's declaration)."""

    name: str
    variables: Dict[str, Tuple[int, ...]]   # variable -> shape of one sample
    classes: int                            # number of labels in `y` (0 when unlabelled)
    images: Tuple[str, ...] = ()            # uint8 variables fed as pixel/255 (ImageNormalization)
    doc: str = ""


class DatasetKind:
    """One kind of dataset. `key` is the `dataset:` key that names it; its value is the kind's
    name (built-in datasets) or a path (file kinds). `options` are the further keys it takes."""

    name = ""
    key = "name"
    options: Tuple[str, ...] = ()
    doc = ""
    derivable = False                        # takes `derive:` (nncgan.data.derived)
    classifier: Optional[Tuple[str, str]] = None  # (graph name, bundled file) of the classifier scoring it

    def takes(self, key):
        """Whether the `dataset:` mapping of this kind may hold `key` (besides its own key and `dir`)."""
        return key in self.options or (key == "derive" and self.derivable)

    def describe(self, spec):
        """DatasetInfo of `spec`; DataError naming the file when its files are not usable."""
        raise NotImplementedError

    def read(self, spec, split, data_dir, log):
        """The split as {variable: array} (samples.Arrays) or a samples.Samples streamed from disk."""
        raise NotImplementedError

    def train_size(self, spec):
        """Training samples, when known without reading the data (`nncgan check`); else None."""
        return None


class BuiltIn(DatasetKind):
    """A dataset nncgan fetches itself: 28x28 grey images `x` and labels `y` 0..classes-1,
    read as uint8 (the batcher scales x to [0, 1], NNC's ImageNormalization)."""

    key = "name"
    derivable = True
    side = 28
    classes = 10
    train_samples: Optional[int] = None

    def images_and_labels(self, split, data_dir, log):
        """(images (N, 28, 28) uint8, labels (N,)) of the split."""
        raise NotImplementedError

    def describe(self, spec):
        return DatasetInfo(self.name, {"x": (1, self.side, self.side), "y": (1,)}, self.classes, ("x",), self.doc)

    def read(self, spec, split, data_dir, log):
        images, labels = self.images_and_labels(split, data_dir, log)
        return {"x": images[:, None, :, :], "y": labels[:, None]}

    def train_size(self, spec):
        return self.train_samples
