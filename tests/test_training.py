"""Training runs on a slice of real MNIST: the last epoch is what is kept, and --resume continues it."""
import json

import numpy as np
import nnabla as nn
import pytest
from PIL import Image

from nncgan import cli, run as runs
from nncgan.graph.parse import parse_graph
from nncgan.train import checkpoint, loop
from nncgan.train.optimizer import OptimizerStep

from conftest import CGAN


def params_now():
    return {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}


def train(tmp_path, name, epochs, resume=False, batch=32):
    graph = parse_graph(CGAN)
    graph.config.batch_size = batch
    run = tmp_path / name
    if not resume:
        runs.new_run(graph, run)
    state = loop.train(graph, run, max_epoch=epochs, resume=resume, log=lambda *a: None, quiet=True)
    return run, state


def test_saved_epoch_is_the_last_even_when_an_earlier_loss_was_lower(tmp_path, small_mnist, monkeypatch):
    real_call = OptimizerStep.__call__
    calls = {"n": 0}

    def rising_loss(self, batch, rng, iteration):  # the real step, reporting a loss that only rises
        real_call(self, batch, rng, iteration)
        calls["n"] += 1
        return float(calls["n"])
    monkeypatch.setattr(OptimizerStep, "__call__", rising_loss)
    run, state = train(tmp_path, "r", 3)
    final = params_now()
    losses = {int(e): v["Generator"] for e, v in state["losses"].items()}
    assert min(losses, key=losses.get) == 1 and state["epoch"] == 3
    saved = checkpoint.latest(run)
    assert saved.name == "epoch_0003"
    assert sorted(p.name for p in (run / checkpoint.CKPT_DIR).iterdir()) == ["epoch_0003", "latest"]
    nn.clear_parameters()
    assert json.loads((saved / checkpoint.STATE).read_text())["epoch"] == 3
    checkpoint.load(run)
    for k, v in params_now().items():
        assert np.array_equal(v, final[k]), k


def test_resume_continues_to_the_same_parameters_as_an_unbroken_run(tmp_path, small_mnist):
    _, straight = train(tmp_path, "straight", 2)
    unbroken = params_now()
    nn.clear_parameters()
    run, first = train(tmp_path, "broken", 1)
    assert first["epoch"] == 1
    nn.clear_parameters()
    _, resumed = train(tmp_path, "broken", 2, resume=True)
    assert resumed["epoch"] == 2 and resumed["iteration"] == straight["iteration"] == 8
    after = params_now()
    assert after.keys() == unbroken.keys()
    for k in unbroken:  # same seed, same batches, same solver states: bit-identical on CPU
        assert np.array_equal(after[k], unbroken[k]), k
    assert resumed["losses"] == straight["losses"]
    series = (run / "monitor" / "Generator-loss.series.txt").read_text()
    # the points of epoch 1 survive the resume, none is logged twice: the same series as unbroken
    assert series == (tmp_path / "straight" / "monitor" / "Generator-loss.series.txt").read_text()
    indices = [int(l.split()[0]) for l in series.splitlines() if l.strip()]
    assert indices and min(indices) <= 4 < max(indices)


def test_cli_train_then_infer_draws_the_label(tmp_path, small_mnist, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", str(CGAN), "--epochs", "2", "--batch-size", "32", "--quiet"]) == 0
    (run,) = list((tmp_path / "runs").iterdir())
    info = runs.read_info(run)
    assert info["status"] == "finished" and info["epochs"] == 2
    assert (run / "graph.yaml").read_text() == CGAN.read_text()
    for f in ("samples/epoch_0001.png", "samples/epoch_0002.png", "learning_curve.png",
              "checkpoints/epoch_0002/parameters.h5", "checkpoints/epoch_0002/parameters.protobuf"):
        assert (run / f).is_file(), f
    tile = Image.open(run / "samples/epoch_0002.png")
    margin = int(tile.text["caption_margin"])  # the label of each row, left of the grid
    assert tile.size == (margin + 10 * 28 + 9 * 2, 10 * 28 + 9 * 2)   # one row per label, 10 images each
    assert cli.main(["infer", "--label", "7", "--num", "12", "--out", "sevens.png"]) == 0
    assert "sevens.png" in capsys.readouterr().out
    img = Image.open(tmp_path / "sevens.png")
    assert img.size == (4 * 28 + 3 * 2, 3 * 28 + 2 * 2) and img.text["label"] == "7"
    assert np.asarray(img).std() > 0


@pytest.mark.parametrize("label", ["10", "-1"])
def test_infer_label_outside_the_classes_is_a_clear_error(tmp_path, small_mnist, capsys, monkeypatch, label):
    monkeypatch.chdir(tmp_path)
    train(tmp_path / "runs", "r", 1)
    assert cli.main(["infer", "--label", label, "--num", "4"]) == 2
    err = capsys.readouterr().err
    assert f"--label {label} is outside the graph's classes 0..9" in err and "Traceback" not in err


def test_infer_without_any_run_says_how_to_make_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["infer", "--label", "1"]) == 2
    assert "train one first" in capsys.readouterr().err


def test_interrupt_keeps_the_last_complete_epoch_and_says_how_to_resume(tmp_path, small_mnist, monkeypatch):
    real_save = checkpoint.save

    def save_then_interrupt(run, epoch, solvers, state):
        out = real_save(run, epoch, solvers, state)
        if epoch == 1:
            monkeypatch.setattr(OptimizerStep, "__call__", lambda *a: (_ for _ in ()).throw(loop.Interrupted()))
        return out
    monkeypatch.setattr(checkpoint, "save", save_then_interrupt)
    with pytest.raises(Exception) as e:
        train(tmp_path, "r", 3)
    assert "interrupted during epoch 2; epoch 1 is kept" in str(e.value) and "--resume --out" in str(e.value)
    assert checkpoint.latest(tmp_path / "r").name == "epoch_0001"
    assert runs.read_info(tmp_path / "r")["status"] == "interrupted"


def digits_only(monkeypatch, digits, n):
    """The 'mnist' dataset made of the first `n` real images of `digits` (each split)."""
    from conftest import dataset_dir, stand_in
    where = str(dataset_dir("mnist"))

    def load(split, data_dir=None, log=print):
        a = real(split, where, lambda *_: None)
        keep = np.isin(a["y"][:, 0], digits)
        return {k: v[keep][:n] for k, v in a.items()}
    real = stand_in(monkeypatch, "mnist", load)


def read_digits(classifier, png, n):
    """What the project's classifier reads in the first `n` cells of a tiled picture."""
    from nncgan.eval.classifier import Classifier
    img = np.asarray(Image.open(png).convert("L"), np.float32) / 255
    cols = (img.shape[1] + 2) // 30
    cells = np.stack([img[(i // cols) * 30:][:28, (i % cols) * 30:][:, :28] for i in range(n)])
    return Classifier(classifier)(cells[:, None])[0].argmax(1)


def test_cli_train_then_infer_draws_the_digit_asked_for(tmp_path, mnist_classifier, monkeypatch, capsys):
    # Two digits, so that the label's meaning is learned in 80 steps (one epoch of 1280 images at
    # batch 16, a 4x step); ten need about ten times more. The classifier reads what infer drew.
    digits_only(monkeypatch, [0, 1], 1280)
    monkeypatch.chdir(tmp_path)
    fast = [a for o in ("Generator", "DiscriminatorFake", "DiscriminatorReal")
            for a in ("--set", f"optimizers.{o}.solver.alpha=0.002")]
    assert cli.main(["train", str(CGAN), "--epochs", "1", "--batch-size", "16", "--no-eval", "--quiet",
                     "--out", "run"] + fast) == 0
    assert runs.read_info(tmp_path / "run")["status"] == "finished"
    for digit in (0, 1):
        assert cli.main(["infer", "--run", "run", "--label", str(digit), "--num", "20", "--out", f"{digit}.png"]) == 0
        read = read_digits(mnist_classifier, f"{digit}.png", 20)
        assert (read == digit).mean() >= 0.6, (digit, read)
