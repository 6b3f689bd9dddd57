"""Data-parallel training (nncgan/train/distributed.py): everything that runs without GPUs."""
from argparse import Namespace

import numpy as np
import nnabla as nn
import pytest

from conftest import CGAN
from nncgan import cli, run as runs
from nncgan.errors import RunError
from nncgan.graph.parse import parse_graph
from nncgan.train import checkpoint, distributed, loop

MPI = {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}


@pytest.mark.parametrize("n,size,batch", [(1000, 3, 16), (128, 2, 32), (97, 4, 8)])
def test_shards_are_disjoint_equal_whole_batches_from_the_epoch_order(n, size, batch):
    order = np.random.default_rng(5).permutation(n)
    shards = [distributed.shard_order(order, r, size, batch) for r in range(size)]
    per_rank = (n // size // batch) * batch
    assert all(len(s) == per_rank for s in shards) and per_rank > 0
    flat = np.concatenate(shards)
    assert len(set(flat.tolist())) == len(flat)                   # disjoint
    assert set(flat.tolist()) <= set(order.tolist())
    assert n - len(flat) < size * batch + size                    # covering, up to a remainder
    assert shards[1][:3].tolist() == order[1::size][:3].tolist()


def _epoch_samples(rank, size, epochs=2, n=200, batch=10, seed=7):
    arrays = {"x": np.arange(n), "y": np.arange(n) % 10}
    di, iters = distributed.iterator(arrays, batch, seed, distributed.Comm(rank, size))
    out = []
    for _ in range(epochs):
        xs = np.concatenate([di.next()[0] for _ in range(iters)])
        out.append(xs.tolist())
    return iters, out


def test_sharded_iterators_split_each_epoch_among_the_ranks():
    (iters0, r0), (iters1, r1) = _epoch_samples(0, 2), _epoch_samples(1, 2)
    assert iters0 == iters1 == 10                                # 200 / 2 ranks / batch 10
    for e in range(2):
        assert not set(r0[e]) & set(r1[e])                       # no image twice in an epoch
        assert sorted(r0[e] + r1[e]) == list(range(200))         # every image once
    assert r0[0] != r0[1]                                        # reshuffled every epoch
    assert _epoch_samples(0, 2)[1] == r0                         # the same for every process that asks


def test_plan_reads_mpirun_and_refuses_flags_that_cannot_work():
    assert distributed.plan("auto", {}) == (0, 1, 0)
    assert distributed.plan("none", {}) == (0, 1, 0)
    assert distributed.plan("auto", MPI) == (1, 2, 1)
    assert distributed.plan("nccl", {"PMI_SIZE": "4", "PMI_RANK": "3"}) == (3, 4, 0)
    with pytest.raises(RunError, match="--comm none"):
        distributed.plan("none", MPI)
    with pytest.raises(RunError, match="started alone"):
        distributed.plan("nccl", {})
    with pytest.raises(RunError, match="rank 2 of 2"):
        distributed.plan("auto", dict(MPI, OMPI_COMM_WORLD_RANK="2"))
    with pytest.raises(RunError, match="OMPI_COMM_WORLD_SIZE='two'"):
        distributed.plan("auto", dict(MPI, OMPI_COMM_WORLD_SIZE="two"))


def test_several_processes_on_the_cpu_are_refused_with_what_to_install():
    with pytest.raises(RunError, match="nnabla-ext-cuda"):
        distributed.require_cuda("cpu", 2)
    with pytest.raises(RunError, match="nnabla-ext-cuda"):
        distributed.setup("nccl", "cpu", env=MPI)
    assert distributed.setup("auto", "cpu", env={}) is distributed.SINGLE


def test_cli_comm_errors_exit_2_before_any_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", str(CGAN), "--comm", "nccl"]) == 2
    assert "mpirun -n 4 nncgan train" in capsys.readouterr().err
    for k, v in MPI.items():
        monkeypatch.setenv(k, v)
    assert cli.main(["train", str(CGAN), "--out", "r"]) == 2          # auto under mpirun, on a CPU
    assert "nnabla-ext-cuda" in capsys.readouterr().err
    assert cli.main(["train", str(CGAN), "--comm", "none", "--out", "r"]) == 2
    assert "--comm none" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "runs").exists()


def test_only_rank_0_writes_the_run(tmp_path):
    assert distributed.Comm(0, 4).writes and not distributed.Comm(3, 4).writes
    graph = parse_graph(CGAN)
    real = runs.new_run(graph, tmp_path / "real")
    (real / checkpoint.CKPT_DIR / "epoch_0001").mkdir(parents=True)
    (real / checkpoint.CKPT_DIR / "epoch_0001" / "parameters.h5").write_bytes(b"saved by rank 0")
    before = sorted(p.relative_to(real) for p in real.rglob("*"))
    seen = {}

    def fake_train(run, info):  # what the loop of a rank > 0 writes lands in its scratch copy
        seen["run"], seen["info"] = run, info
        (run / "written-by-rank-1").write_text("x")
        return 0
    args = Namespace(out=str(real), resume=True)
    assert distributed.train_other_rank(args, graph, fake_train) == 0
    run = seen["run"]
    assert run != real and not run.exists()                                        # removed at the end
    assert seen["info"]["name"] == graph.name                                       # resumed from rank 0's
    assert sorted(p.relative_to(real) for p in real.rglob("*")) == before           # real run untouched
    args = Namespace(out=str(tmp_path / "new"), resume=False)
    distributed.train_other_rank(args, graph, fake_train)
    assert not (tmp_path / "new").exists()
    with pytest.raises(RunError, match="not a run to resume"):
        distributed.train_other_rank(Namespace(out=str(tmp_path / "none"), resume=True), graph, fake_train)


class FakeComm:
    """Stands in for NNabla's communicator: another 'process' whose gradients are all zero."""

    def __init__(self):
        self.calls, self.rank, self.size, self.local_rank = 0, 0, 2, 0

    def all_reduce(self, grads, division, inplace):
        assert division and inplace
        self.calls += 1
        for g in grads:
            g.data = g.data / 2   # the average with a rank that computed zero gradients


def test_gradients_are_averaged_before_every_update_and_rank_0_saves(tmp_path, small_mnist):
    small_mnist["n"] = 64
    graph = parse_graph(CGAN)
    graph.config.batch_size = 16
    run = runs.new_run(graph, tmp_path / "dp")
    fake = FakeComm()
    comm = distributed.Comm(0, 2, 0, fake)
    state = loop.train(graph, run, max_epoch=1, log=lambda *a: None, quiet=True, comm=comm)
    # 64 images / 2 processes / batch 16 = 2 steps, each of 3 optimizers all-reducing first
    assert state["iteration"] == 2 and fake.calls == 6
    assert checkpoint.latest(run).name == "epoch_0001"
    assert all(np.isfinite(v.d).all() for v in nn.get_parameters(grad_only=False).values())
