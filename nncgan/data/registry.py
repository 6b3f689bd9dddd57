"""The dataset kinds a graph's `dataset:` mapping can name: one class each, listed in KINDS.

Adding a built-in dataset is a `BuiltIn` class here (its reader in a module of its own, e.g.
mnist.py); adding a file kind is a `DatasetKind` class here. Nothing else lists them: the
graph parser, `render`, `check`, the trainer, `nncgan eval` and the CLI's choices read KINDS.
The format modules are imported when a kind reads, never at import time, and none imports
this module, so there is no import cycle. (docs: "Extending nncgan")
"""
from ..errors import DataError
from .kind import BuiltIn, DatasetInfo, DatasetKind  # noqa: F401  (DatasetInfo: re-exported)


class Mnist(BuiltIn):
    name = "mnist"
    doc = "MNIST digits: x image (1,28,28) in [0,1], y label 0-9"
    train_samples = 60000
    classifier = ("classifier_mnist", "graphs/classifier_mnist.yaml")

    def images_and_labels(self, split, data_dir, log):
        from .mnist import load_mnist
        return load_mnist(split, data_dir, log=log)


class FashionMnist(BuiltIn):
    name = "fashion-mnist"
    doc = "Fashion-MNIST: x image (1,28,28) in [0,1], y label 0-9 (T-shirt/top ... Ankle boot)"
    train_samples = 60000
    classifier = ("classifier_fashion", "graphs/classifier_fashion.yaml")

    def images_and_labels(self, split, data_dir, log):
        from .fashion_mnist import load_fashion_mnist
        return load_fashion_mnist(split, data_dir, log=log)


class CsvFile(DatasetKind):
    """An NNC CSV dataset (nncgan.data.csv_dataset): one file, the same for every split."""

    name = key = "csv"
    doc = "an NNC CSV file"

    def describe(self, spec):
        from .csv_dataset import describe
        return describe(spec.path)

    def read(self, spec, split, data_dir, log):
        # The table is read again: the file may have changed since the graph was parsed.
        from .csv_dataset import CsvTable, load_table
        return load_table(CsvTable(spec.path), log)

    def train_size(self, spec):
        from .csv_dataset import CsvTable
        return len(CsvTable(spec.path))  # the rows, without reading any image


class ImageFolder(DatasetKind):
    """Image folders (nncgan.data.folders): classes, paired, side-by-side or unpaired."""

    name = key = "folder"
    options = ("size", "layout")
    doc = "image folders"

    def describe(self, spec):
        from .folders import describe
        return describe(spec.path, **spec.option_dict())

    def read(self, spec, split, data_dir, log):
        from .folders import load
        return load(spec.path, log=log, **spec.option_dict())


KINDS = (Mnist(), FashionMnist(), CsvFile(), ImageFolder())


def kind(name):
    """The kind named `name`; DataError listing the known ones otherwise."""
    for k in KINDS:
        if k.name == name:
            return k
    raise DataError(f"unknown dataset {name!r}; known: {', '.join(built_in_names())}")


def built_in_names():
    return tuple(k.name for k in KINDS if k.key == "name")


def file_keys():
    return tuple(k.key for k in KINDS if k.key != "name")

