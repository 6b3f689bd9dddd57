"""The domain classifier `nncgan eval` reads images with: a finished run of a classifier graph.

A classifier graph (graphs/classifier_mnist.yaml) is an ordinary nncgan graph whose executor reads
the dataset variable x and outputs class scores; its executor network also names the penultimate
layer as the output `features` (the Frechet distance's feature space). Its parameters are loaded
into a parameter scope of their own, outside NNabla's global registry, so a GAN's parameters (which
may carry the same names, e.g. 'Affine/affine/W') are neither overwritten nor saved with it.
"""
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import nnabla as nn
import nnabla.functions as F

from .. import runs
from ..data import registry
from ..builder import build_network
from ..errors import RunError
from ..train import checkpoint

# dataset name -> the classifier graph trained for it (its `name:` and its file): declared by each
# built-in dataset kind (nncgan.data.registry)
GRAPHS = {k.name: k.classifier for k in registry.KINDS if k.classifier}
FEATURES = runs.FEATURES        # the executor network's output naming the feature layer
ENV = "NNCGAN_CLASSIFIER_RUNS"  # further folders (':'-separated) searched for classifier runs
INFO = "classifier.json"        # RUN/eval/classifier.json: the test accuracy measured after training
# Images per forward pass. 100 rather than 500: the same speed on a CPU (8.4 against 7.6 s per 2000
# images, measured interleaved), and 160 MB less resident after the first per-epoch score (issue 17).
BATCH = 100


def train_command(dataset):
    from ..hints import command
    return command("train", GRAPHS[dataset][0]) if dataset in GRAPHS else None  # a bundled sample, by name


def find(dataset, runs_dirs=("runs",)):
    """The latest finished run of the classifier graph for `dataset`, from the first of `runs_dirs`
    (then $NNCGAN_CLASSIFIER_RUNS) that holds one; RunError naming the command that trains one if none does."""
    if dataset not in GRAPHS:
        raise RunError(f"no classifier graph for dataset '{dataset}'; nncgan eval knows "
                       f"{', '.join(GRAPHS)} (or pass --classifier RUN)")
    name = GRAPHS[dataset][0]
    dirs = [Path(d) for d in runs_dirs] + [Path(d) for d in os.environ.get(ENV, "").split(":") if d]
    for root in dict.fromkeys(d.resolve() for d in dirs):
        found = runs.find(root, name=name, status="finished")
        if found:
            return found[0].path
    where = ", ".join(f"{d}/" for d in dict.fromkeys(map(str, dirs)))
    raise RunError(f"no trained classifier for dataset '{dataset}' (a finished run of graph "
                   f"'{name}' under {where}); train one with: {train_command(dataset)} "
                   f"(or pass --classifier RUN)")


class Classifier:
    """A classifier graph's executor network: images (N, C, H, W) in [0, 1] -> probabilities, features."""

    def __init__(self, run, batch_size=BATCH):
        """The last saved epoch of classifier run `run`, in a parameter scope of its own."""
        opened = runs.Run(run)
        self.run = opened.path
        graph = opened.graph()
        self._scope = OrderedDict()  # private: never in nn.get_parameters(), never saved with a GAN
        with nn.parameter_scope("classifier", self._scope):
            self._build(graph, batch_size, where=opened.graph_file)
            self.epoch = checkpoint.load(run)["epoch"]
        self.test_accuracy = read_test_accuracy(run, self.epoch)

    @classmethod
    def live(cls, graph, batch_size=BATCH):
        """The executor network on the parameters being trained now (a classifier graph's own run)."""
        self = cls.__new__(cls)
        self.run, self.epoch, self.test_accuracy = None, None, None
        self._build(graph, batch_size, where=graph.path)
        return self

    def _build(self, graph, batch_size, where):
        ex = graph.executor
        net = graph.networks[ex.network]
        if FEATURES not in net.outputs:
            raise RunError(f"{where}: network '{net.name}' names no output '{FEATURES}' (the feature "
                           f"layer for the Frechet distance), e.g. outputs: {{y: Affine_2, {FEATURES}: ReLU_3}}")
        built = build_network(net, batch_size)
        if "x" not in built.data or set(built.data) - {"x"}:
            raise RunError(f"{where}: a classifier's executor must read the dataset variable x only "
                           f"(it reads {', '.join(sorted(built.data)) or 'none'})")
        self.graph, self.batch_size = graph, batch_size
        self.dataset, self.classes = graph.dataset.name, graph.dataset.classes
        self.spec = graph.dataset
        self.inputs = built.data["x"]
        self.image_shape = tuple(self.inputs[0].shape[1:])
        self.probs = F.softmax(built.outputs[ex.output])
        self.features_var = built.outputs[FEATURES]

    def __call__(self, images):
        """(probabilities (N, classes), features (N, D)) of float images in [0, 1]."""
        images = np.asarray(images, np.float32)
        if tuple(images.shape[1:]) != self.image_shape:
            raise RunError(f"the classifier{f' in {self.run}' if self.run else ''} reads images of shape "
                           f"{self.image_shape}, got {tuple(images.shape[1:])}")
        probs, feats = [], []
        b = self.batch_size
        for i in range(0, len(images), b):
            chunk = images[i:i + b]
            for v in self.inputs:
                v.d[:len(chunk)] = chunk
                v.d[len(chunk):] = 0
            nn.forward_all([self.probs, self.features_var], clear_buffer=True)
            probs.append(self.probs.d[:len(chunk)].copy())
            feats.append(self.features_var.d[:len(chunk)].reshape(len(chunk), -1).copy())
        return np.concatenate(probs), np.concatenate(feats).astype(np.float64)


def is_classifier(graph):
    """A graph whose executor reads dataset images and names a feature layer: a classifier graph."""
    return runs.kind_of(graph) == runs.CLASSIFIER


def test_split(dataset, data_dir=None):
    """The test images in [0, 1] and labels of `dataset` (a DatasetSpec or a built-in dataset's
    name): what a classifier's accuracy is measured on (never limited by --limit-samples)."""
    import numpy as np
    from ..data.spec import resolve
    from ..images import as_fed
    info = resolve(dataset)
    test = info.load("test", data_dir, log=lambda *a: None)
    images = as_fed(test["x"], "x" in info.images)
    return images, np.asarray(test["y"]).reshape(len(test["y"]), -1)[:, 0]


def test_accuracy(clf, images, labels):
    """The share of `images` the classifier reads as their labels (training's line and `eval` alike)."""
    return float((clf(images)[0].argmax(1) == labels).mean())


def write_test_accuracy(run, epoch, accuracy, n):
    import json
    from .. import safeio
    safeio.write_text(Path(run) / "eval" / INFO,
                      json.dumps({"epoch": epoch, "test_accuracy": accuracy, "test_samples": n}, indent=1) + "\n")


def read_test_accuracy(run, epoch, with_count=False):
    """The test accuracy measured of epoch `epoch` of the run, or None (not measured, or of another epoch);
    with_count: (accuracy, number of test images) or (None, None)."""
    import json
    path = Path(run) / "eval" / INFO
    try:
        from .. import safeio
        saved = json.loads(safeio.read_text(path, limit=1 << 20))
        acc = float(saved["test_accuracy"]) if saved.get("epoch") == epoch else None
        n = saved.get("test_samples") if acc is not None else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        acc = n = None
    return (acc, n) if with_count else acc
