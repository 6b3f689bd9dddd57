"""A tiny trained cgan_mnist run (2 epochs of 2 iterations on 64 MNIST images), trained once per
test session and shared by the picture tests (latent tools, report), which only read it."""
import nnabla as nn
import pytest

from nncgan import run as runs
from nncgan.graph.parse import parse_graph
from nncgan.train import loop

from conftest import CGAN, dataset_dir, use_small_mnist

_RUNS = {}


def tiny_run(tmp_path_factory):
    dataset_dir("mnist")
    if "run" not in _RUNS:
        with pytest.MonkeyPatch.context() as mp:
            use_small_mnist(mp)["n"] = 64
            nn.clear_parameters()
            graph = parse_graph(CGAN)
            graph.config.batch_size = 32
            run = tmp_path_factory.mktemp("tiny") / "run"
            runs.new_run(graph, run)
            loop.train(graph, run, max_epoch=2, log=lambda *a: None, quiet=True)
            nn.clear_parameters()
        _RUNS["run"] = run
    return _RUNS["run"]
