"""Runs that meet real trouble: signals during a save, damaged files, divergence, a full disk, a
run folder in use, parameters that no longer fit the graph. Each is triggered for real."""
import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess

import h5py
import numpy as np
import nnabla as nn
import pytest

from nncgan import cli, run as runs
from nncgan.errors import RunError
from nncgan.graph.parse import parse_graph
from nncgan.train import checkpoint, loop
from nncgan.train.optimizer import OptimizerStep

from conftest import CGAN, use_small_mnist


def train(run, epochs, resume=False, batch=32, graph_path=CGAN):
    graph = parse_graph(run / runs.GRAPH_COPY if resume else graph_path)
    graph.config.batch_size = batch
    if not resume:
        runs.new_run(graph, run)
        runs.update_info(run, batch_size=batch)
    return loop.train(graph, run, max_epoch=epochs, resume=resume, log=lambda *a: None, quiet=True)


def saved_params(folder):
    with h5py.File(folder / checkpoint.PARAMS, "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def cli_err(capsys, argv):
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


# ---- signals during a save


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_save_finishes_the_save_then_stops(tmp_path, small_mnist, monkeypatch, sig):
    real = nn.save_parameters
    sent = []

    def save_and_signal(path, *a, **kw):
        if not sent:  # the first file of epoch 1: the signal arrives with the save half done
            sent.append(os.kill(os.getpid(), sig))
        return real(path, *a, **kw)
    monkeypatch.setattr(nn, "save_parameters", save_and_signal)
    run = tmp_path / "r"
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under a background shell
    with pytest.raises(RunError) as e:
        train(run, 3)
    assert sent and "interrupted while saving epoch 1, which was finished first; epoch 1 is kept" in str(e.value)
    assert "--resume --out" in str(e.value)
    folder = checkpoint.latest(run)  # verified against its manifest
    assert folder.name == "epoch_0001" and (folder / "parameters.protobuf").is_file()
    assert runs.read_info(run)["status"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_a_signal_during_a_step_abandons_the_epoch_at_once(tmp_path, small_mnist, monkeypatch):
    real = OptimizerStep.__call__
    seen = []

    def step(self, batch, rng, iteration):
        seen.append(iteration)
        if iteration == 5:  # epoch 2 (4 iterations an epoch)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, batch, rng, iteration)
    monkeypatch.setattr(OptimizerStep, "__call__", step)
    run = tmp_path / "r"
    with pytest.raises(RunError, match="interrupted during epoch 2; epoch 1 is kept"):
        train(run, 3)
    assert max(seen) == 5 and checkpoint.latest(run).name == "epoch_0001"


# ---- damaged files


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGE = {
    "parameters.h5": ("flipped", _flip_byte),
    "solver-Generator.h5": ("truncated", lambda p: p.write_bytes(p.read_bytes()[:100])),
    "state.json": ("deleted", lambda p: p.unlink()),
    "MANIFEST.json": ("garbled", lambda p: p.write_text("{not json")),
}


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, mnist_dir):
    """One epoch trained once for the module (on the first 128 images); tests get a copy."""
    run = tmp_path_factory.mktemp("once") / "r"
    with pytest.MonkeyPatch.context() as mp:
        use_small_mnist(mp)
        train(run, 1)
    nn.clear_parameters()
    return run


@pytest.fixture
def one_epoch(trained_once, tmp_path, small_mnist):
    run = tmp_path / "r"
    shutil.copytree(trained_once, run)
    return run


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_a_damaged_file_is_named_by_resume_and_infer_and_never_used(one_epoch, capsys, name):
    run = one_epoch
    path = run / "checkpoints" / "epoch_0001" / name
    DAMAGE[name][1](path)
    for argv in (["train", CGAN, "--resume", "--out", run, "--epochs", 2, "--quiet"],
                 ["infer", "--run", run, "--num", 4, "--out", run / "x.png"]):
        rc, err = cli_err(capsys, argv)
        assert rc == 2 and str(path) in err, (argv, err)
    assert not (run / "x.png").exists() and not (run / "checkpoints" / "epoch_0002").exists()


def test_a_damaged_latest_epoch_is_an_error_even_beside_an_older_intact_one(one_epoch, tmp_path):
    run = one_epoch
    keep = tmp_path / "epoch_0001"
    shutil.copytree(run / "checkpoints" / "epoch_0001", keep)
    nn.clear_parameters()
    train(run, 2, resume=True)
    shutil.copytree(keep, run / "checkpoints" / "epoch_0001")
    damaged = run / "checkpoints" / "epoch_0002" / "parameters.protobuf"
    _flip_byte(damaged)
    with pytest.raises(RunError) as e:
        checkpoint.latest(run)
    assert f"{damaged} is damaged" in str(e.value) and "older complete epoch epoch_0001 is intact" in str(e.value)
    (run / "checkpoints" / "latest").write_text("epoch_0001")  # what the message says to do
    assert checkpoint.latest(run).name == "epoch_0001"


@pytest.mark.parametrize("text", ["[1, 2]", "{\"status\": \"running\"", "{\"graph\": 7}"])
def test_a_damaged_run_json_is_named_by_resume_and_infer(one_epoch, capsys, text):
    (one_epoch / runs.RUN_INFO).write_text(text)
    for argv in (["train", CGAN, "--resume", "--out", one_epoch, "--epochs", 2, "--quiet"],
                 ["infer", "--run", one_epoch, "--num", 4, "--out", one_epoch / "x.png"]):
        rc, err = cli_err(capsys, argv)
        assert rc == 2 and str(one_epoch) in err and runs.RUN_INFO in err, err


def test_a_damaged_pointer_is_named_and_a_lost_one_falls_back_to_the_intact_epoch(one_epoch):
    pointer = one_epoch / "checkpoints" / "latest"
    pointer.write_text("../../etc")
    with pytest.raises(RunError, match="latest is damaged: it names '../../etc'"):
        checkpoint.latest(one_epoch)
    pointer.unlink()  # as after a kill between the first epoch's rename and its pointer
    assert checkpoint.latest(one_epoch).name == "epoch_0001"


# ---- divergence


def test_a_nan_parameter_stops_the_run_naming_optimizer_epoch_and_iteration(tmp_path, small_mnist, monkeypatch):
    real = OptimizerStep.__call__

    def step(self, batch, rng, iteration):
        loss = real(self, batch, rng, iteration)
        if iteration == 5 and self.opt.name == "DiscriminatorReal":  # epoch 2, its 2nd iteration
            var = self.network.trainable["Affine_4/affine/b"][0]
            var.d = np.full(var.shape, np.nan)
        return loss
    monkeypatch.setattr(OptimizerStep, "__call__", step)
    run = tmp_path / "r"
    with pytest.raises(RunError) as e:
        train(run, 3)
    msg = str(e.value)
    assert ("optimizer 'DiscriminatorReal' (network 'DiscriminatorReal') produced parameter "
            "'Affine_4/affine/b' NaN at iteration 2 of 4 in epoch 2") in msg
    assert "the last good epoch, 1, is kept" in msg
    assert checkpoint.latest(run).name == "epoch_0001"
    assert all(np.isfinite(v).all() for v in saved_params(checkpoint.latest(run)).values())
    assert runs.read_info(run)["status"] == "diverged"


def test_a_huge_learning_rate_really_diverges_and_no_nan_epoch_is_saved(tmp_path, small_mnist, capsys):
    graph = tmp_path / "hot.yaml"
    graph.write_text(CGAN.read_text().replace("alpha: 0.0005", "alpha: 1.0e+38"))
    rc, err = cli_err(capsys, ["train", graph, "--epochs", 2, "--batch-size", 32, "--quiet", "--out", tmp_path / "r"])
    assert rc == 2 and "training diverged: optimizer '" in err and "in epoch 1" in err, err
    assert "no epoch was saved" in err and not (tmp_path / "r" / "checkpoints" / "epoch_0001").exists()


def test_a_nan_running_statistic_is_caught_before_the_save(tmp_path, small_mnist, monkeypatch):
    real = OptimizerStep.__call__

    def step(self, batch, rng, iteration):
        loss = real(self, batch, rng, iteration)
        if iteration == 3:  # the last iteration of epoch 1; running means are never trained
            nn.get_parameters(grad_only=False)["BatchNormalization/bn/mean"].d[...] = np.inf
        return loss
    monkeypatch.setattr(OptimizerStep, "__call__", step)
    with pytest.raises(RunError, match="parameter 'BatchNormalization/bn/mean' Inf at the end of epoch 1"):
        train(tmp_path / "r", 2)
    assert not (tmp_path / "r" / "checkpoints" / "epoch_0001").exists()


# ---- the run folder


def test_a_full_disk_during_a_save_keeps_the_previous_epoch(one_epoch, capsys, monkeypatch):
    run = one_epoch
    before = {p.name: p.read_bytes() for p in (run / "checkpoints" / "epoch_0001").iterdir()}
    real = nn.save_parameters

    def full(path, *a, **kw):
        real(path, *a, **kw)
        with open(path, "r+b") as f:  # as if the disk filled up half-way through the file
            f.truncate(os.path.getsize(path) // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(nn, "save_parameters", full)
    rc, err = cli_err(capsys, ["train", CGAN, "--resume", "--out", run, "--epochs", 2, "--quiet"])
    assert rc == 2 and "cannot save epoch 2" in err and "No space left on device; epoch 1 is kept" in err, err
    assert sorted(os.listdir(run / "checkpoints")) == ["epoch_0001", "latest"]  # the half epoch removed
    assert checkpoint.latest(run).name == "epoch_0001"
    assert {p.name: p.read_bytes() for p in (run / "checkpoints" / "epoch_0001").iterdir()} == before


def test_a_run_folder_that_cannot_be_written_is_reported_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rc, err = cli_err(capsys, ["train", CGAN, "--out", blocker / "run", "--quiet"])
    assert rc == 2 and f"cannot write the run folder {blocker / 'run'}" in err


@contextlib.contextmanager
def read_only(folder):
    """`folder` made read-only for this process: mode 555, or for root (whom modes do not stop) the
    immutable attribute (chattr +i: no file created, renamed or removed in it)."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        undo = ["chmod", "755", str(folder)]
    else:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"as root a folder is made read-only with chattr +i, which failed here: {made.stderr.strip()}")
        undo = ["chattr", "-i", str(folder)]
    try:
        yield
    finally:
        subprocess.run(undo, check=True)


def test_a_read_only_run_folder_is_refused_before_training(one_epoch, capsys):
    with read_only(one_epoch):
        with pytest.raises(OSError):
            (one_epoch / "probe").write_text("x")  # the folder really is read-only to this process
        rc, err = cli_err(capsys, ["train", CGAN, "--resume", "--out", one_epoch, "--epochs", 2])
    assert rc == 2 and f"cannot write in the run folder {one_epoch}" in err


def test_a_second_train_on_a_run_in_use_is_refused(one_epoch, capsys):
    with runs.locked(one_epoch):
        rc, err = cli_err(capsys, ["train", CGAN, "--resume", "--out", one_epoch, "--epochs", 2, "--quiet"])
        assert rc == 2 and f"{one_epoch} is in use by another nncgan train (pid {os.getpid()})" in err
        with pytest.raises(RunError, match="in use"):
            with runs.locked(one_epoch):
                pass
    assert json.loads((one_epoch / "checkpoints" / "epoch_0001" / "state.json").read_text())["epoch"] == 1
    with runs.locked(one_epoch):  # released with the holder
        pass


# ---- parameters that no longer fit the graph


def test_resume_after_the_graph_was_edited_names_the_scope_and_both_shapes(one_epoch, capsys):
    copy = one_epoch / runs.GRAPH_COPY
    copy.write_text(copy.read_text().replace("{name: Affine_3, type: Affine, out_shape: 512",
                                             "{name: Affine_3, type: Affine, out_shape: 256"))
    rc, err = cli_err(capsys, ["train", CGAN, "--resume", "--out", one_epoch, "--epochs", 2, "--quiet"])
    assert rc == 2 and "'Affine_3/affine/W' is (3146, 512) in the saved epoch but (3146, 256) in the graph" in err


def test_infer_after_the_graph_was_edited_names_the_scope_and_both_shapes(one_epoch, capsys):
    copy = one_epoch / runs.GRAPH_COPY
    copy.write_text(copy.read_text().replace("{name: Affine, type: Affine, out_shape: 512",
                                             "{name: Affine, type: Affine, out_shape: 500"))
    rc, err = cli_err(capsys, ["infer", "--run", one_epoch, "--num", 4, "--out", one_epoch / "x.png"])
    assert rc == 2 and "'Affine/affine/W' is (110, 512) in the saved epoch but (110, 500) in the graph" in err
    assert not (one_epoch / "x.png").exists()
