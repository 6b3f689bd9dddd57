"""Shared fixtures: the real MNIST files beside the checkout, and small slices of them."""
import os
from pathlib import Path

import numpy as np
import nnabla as nn
import pytest

from nncgan import context
from nncgan.data import registry

ROOT = Path(__file__).resolve().parents[1]
CGAN = ROOT / "graphs" / "cgan_mnist.yaml"
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
# `nncgan train` runs as one process in the suite (its default is one per core): the tests of
# several processes (test_distributed.py) ask for them with --procs.
os.environ.setdefault("NNCGAN_PROCS", "1")


def mnist_available():
    return (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file()


@pytest.fixture(autouse=True)
def cpu_and_fresh_parameters():
    context.select("cpu", log=lambda *a: None)
    nn.clear_parameters()
    yield
    nn.clear_parameters()


@pytest.fixture
def small_mnist(monkeypatch):
    """Make the 'mnist' dataset the first `n` real training images (default 128), for quick runs."""
    if not mnist_available():
        pytest.skip(f"MNIST files not found in {MNIST_DIR}")
    return use_small_mnist(monkeypatch)


def use_small_mnist(monkeypatch):
    info = registry.DATASETS["mnist"]
    real_load = info.load
    state = {"n": 128}

    def load(split, data_dir=None, log=print):
        arrays = real_load(split, str(MNIST_DIR), log=lambda *a: None)
        return {k: v[:state["n"]] for k, v in arrays.items()}

    monkeypatch.setitem(registry.DATASETS, "mnist", registry.DatasetInfo(
        info.name, info.variables, info.classes, load, info.images, info.doc))
    return state


def use_image_splits(monkeypatch, name, splits):
    """Dataset `name` replaced by in-memory images per split (labels 0..9 in turn)."""
    info = registry.DATASETS[name]

    def load(split, data_dir=None, log=print):
        x = splits[split]
        return {"x": x, "y": (np.arange(len(x)) % 10).astype(np.float32)[:, None]}
    monkeypatch.setitem(registry.DATASETS, name, registry.DatasetInfo(
        info.name, info.variables, info.classes, load, info.images, info.doc))
    return splits


def batch_for(built, seed=0):
    """A deterministic batch for every dataset variable a built network reads."""
    rng = np.random.RandomState(seed)
    out = {}
    for var, vs in built.data.items():
        shape = vs[0].shape
        out[var] = rng.randint(0, 10, shape).astype(np.float32) if var == "y" else rng.rand(*shape)
    return out
