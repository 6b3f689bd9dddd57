"""config.ema: an average of RuntimeGenerator's trained parameters, by the formula, saved and drawn with."""
import json

import numpy as np
import nnabla as nn
import pytest
from PIL import Image

from nncgan import cli
from nncgan.builder import build_all
from nncgan.errors import GraphError
from nncgan.graph import overrides
from nncgan.train import checkpoint, ema as ema_mod
from nncgan.train.optimizer import OptimizerStep

from conftest import CGAN, batch_for

G_TRAINED = {"Affine/affine/W", "Affine_2/affine/W", "Deconvolution/deconv/W", "Deconvolution_2/deconv/W",
             "Deconvolution_2/deconv/b"} | {f"BatchNormalization{s}/bn/{p}" for s in ("", "_2", "_3")
                                            for p in ("beta", "gamma")}


def test_ema_follows_the_formula_over_the_executors_trained_parameters():
    graph, _ = overrides.load(CGAN, ["config.ema=0.9", "config.ema_start=1"])
    nets, rng = build_all(graph, 8, seed=3)
    steps = [OptimizerStep(o, nets[o.network]) for o in graph.optimizers]
    ema = ema_mod.EMA.for_graph(graph, nets)
    assert set(ema.params) == G_TRAINED   # not the discriminator, not BN's running statistics

    def iteration(i):
        for s in steps:
            s(batch_for(s.network, seed=i), rng, i)
        ema.update(i)
        return {k: v.d.astype(np.float64) for k, v in ema.params.items()}

    p0 = iteration(0)                      # before ema_start the average is the parameter
    for k in G_TRAINED:
        assert np.array_equal(ema.shadow[k], p0[k]), k
    p1 = iteration(1)
    p2 = iteration(2)
    for k in G_TRAINED:
        want = 0.9 * (0.9 * p0[k] + 0.1 * p1[k]) + 0.1 * p2[k]
        np.testing.assert_allclose(ema.shadow[k], want, rtol=1e-5, atol=1e-7, err_msg=k)
        assert not np.allclose(ema.shadow[k], p2[k], rtol=1e-4, atol=1e-6), f"{k}: the average is the parameter"


@pytest.mark.parametrize("value", ["1.5", "0", "yes"])
def test_ema_must_be_a_decay(value):
    with pytest.raises(GraphError) as e:
        overrides.load(CGAN, [f"config.ema={value}"])
    assert "config.ema must be a decay between 0 and 1" in str(e.value)


def test_ema_is_saved_with_each_epoch_and_used_by_infer_unless_no_ema(tmp_path, small_mnist, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", str(CGAN), "--epochs", "1", "--batch-size", "32", "--quiet",
                     "--set", "config.ema=0.5", "--out", "r"]) == 0
    trained = {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()}
    folder = checkpoint.latest(tmp_path / "r")
    assert ema_mod.EMA_FILE in json.loads((folder / checkpoint.MANIFEST).read_text())
    saved = ema_mod.read(folder / ema_mod.EMA_FILE)
    assert set(saved) == G_TRAINED
    for k in saved:
        assert saved[k].shape == trained[k].shape and not np.array_equal(saved[k], trained[k]), k
    capsys.readouterr()
    args = ["infer", "--run", "r", "--label", "3", "--num", "4"]
    assert cli.main(args + ["--out", "ema.png"]) == 0
    assert "(EMA parameters)" in capsys.readouterr().out
    assert cli.main(args + ["--out", "plain.png", "--no-ema"]) == 0
    a, b = Image.open("ema.png"), Image.open("plain.png")
    assert (a.text["ema"], b.text["ema"]) == ("True", "False")
    assert cli.main(args + ["--out", "trunc.png", "--truncation", "0.25"]) == 0   # T in the metadata
    assert (a.text["truncation"], Image.open("trunc.png").text["truncation"]) == ("none", "0.25")
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_resumed_run_continues_the_same_average(tmp_path, small_mnist):
    from nncgan import run as runs
    from nncgan.train import loop

    small_mnist["n"] = 64   # 2 iterations an epoch; the average starts within the first epoch

    def train(name, epochs, resume=False):
        graph, _ = overrides.load(CGAN, ["config.ema=0.5", "config.ema_start=1", "config.batch_size=32"])
        if not resume:
            runs.new_run(graph, tmp_path / name)
        loop.train(graph, tmp_path / name, max_epoch=epochs, resume=resume, log=lambda *a: None, quiet=True)
        return ema_mod.read(checkpoint.latest(tmp_path / name) / ema_mod.EMA_FILE)

    straight = train("straight", 2)
    train("broken", 1)
    resumed = train("broken", 2, resume=True)
    assert straight.keys() == resumed.keys() == G_TRAINED
    for k in straight:
        assert np.array_equal(straight[k], resumed[k]), k
