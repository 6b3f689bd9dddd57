"""graphs/pix2pix.yaml: U-Net skips, PatchGAN on pairs, BCE + 100 x L1, frozen halves, CLI train and infer."""
from pathlib import Path

import numpy as np
import nnabla as nn
import pytest
from PIL import Image

from nncgan import cli
from nncgan.builder import build_all, build_network
from nncgan.graph import overrides
from nncgan.graph.parse import parse_graph
from nncgan.train.optimizer import OptimizerStep

from conftest import use_image_splits

ROOT = Path(__file__).resolve().parents[1]
PIX2PIX = ROOT / "graphs" / "pix2pix.yaml"


def synthetic_items(n, seed=0):
    """uint8 (n, 1, 28, 28) 'items': filled rectangles and discs of random grey levels."""
    rng = np.random.RandomState(seed)
    x = np.zeros((n, 1, 28, 28), np.uint8)
    rr, cc = np.mgrid[:28, :28]
    for i in range(n):
        r, c, s = rng.randint(6, 14), rng.randint(6, 14), rng.randint(5, 9)
        mask = (np.abs(rr - r) < s) & (np.abs(cc - c) < s) if i % 2 else (rr - r) ** 2 + (cc - c) ** 2 < s * s
        x[i, 0][mask] = rng.randint(120, 256)
    return x


@pytest.fixture
def fake_fashion(monkeypatch):
    """'fashion-mnist' as 32 synthetic train and 16 test items: the edges derived from them are real."""
    return use_image_splits(monkeypatch, "fashion-mnist",
                            {"train": synthetic_items(32, 1), "test": synthetic_items(16, 2)})


def _batch(n=4, seed=0):
    rng = np.random.RandomState(seed)
    b = synthetic_items(n, seed).astype(np.float32) / 255
    a = (rng.rand(n, 1, 28, 28) < 0.2).astype(np.float32)
    return {"a": a, "b": b}


def test_unet_skips_and_patch_map_shapes():
    g = parse_graph(str(PIX2PIX))
    gen = g.networks["Generator"]
    skips = {l.name: (l.inputs, l.shape) for l in gen.layers if l.type == "Concatenate"}
    # each decoder stage reads the mirrored encoder layer as well as the one below it
    assert skips["Skip2"] == (["Bottleneck_ReLU", "E2_LReLU"], (128, 7, 7))
    assert skips["Skip1"] == (["D1_ReLU", "E1_LReLU"], (64, 14, 14))
    assert skips["Pair"] == (["A", "Fake"], (2, 28, 28))           # D sees (input, output) pairs
    assert gen.layer("Fake").shape == (1, 28, 28) and gen.layer("Patch").shape == (1, 7, 7)
    assert g.networks["DiscriminatorReal"].layer("Pair").inputs == ["A", "B"]
    built = build_network(g.networks["RuntimeGenerator"], 3)
    assert set(built.data) == {"a"} and built.outputs["b"].shape == (3, 1, 28, 28)


def _generator_loss_and_grad(sets):
    """Generator network's loss value and the gradient of the first U-Net convolution, from seed 1."""
    nn.clear_parameters()
    graph, _ = overrides.load(str(PIX2PIX), sets)
    nets, rng = build_all(graph, 4, seed=1)
    net = nets["Generator"]
    net.feed(_batch(), rng)
    w = nn.get_parameters()["E1/conv/W"]
    w.grad.zero()
    net.loss.forward(clear_no_need_grad=True)
    net.loss.backward()
    return net, float(net.loss.d), w.g.copy()


def test_generator_loss_is_bce_plus_100_l1_in_value_and_gradient():
    net, total, grad = _generator_loss_and_grad([])
    assert {k: w for k, (w, _) in net.loss_terms.items()} == {"GAN": 1.0, "L1": 100.0}
    # the terms, recomputed in numpy from the network's own outputs
    logits = net.outputs["P3"].d
    bce = np.mean(np.log1p(np.exp(-logits)))                        # -log(sigmoid(z)) against 1
    l1 = np.mean(np.abs(net.outputs["Fake"].d - _batch()["b"]))
    assert net.outputs["GAN"].shape == (4, 1, 7, 7)                 # BCE on every patch, then the mean
    assert total == pytest.approx(bce + 100 * l1, rel=1e-5)
    # the gradient is the weighted sum of the terms' gradients: lambda really scales L1
    _, gan_only, g_gan = _generator_loss_and_grad(["networks.Generator.layers.5.weight=0"])
    _, l1_only, g_l1 = _generator_loss_and_grad(["networks.Generator.layers.4.weight=0",
                                                 "networks.Generator.layers.5.weight=1"])
    assert gan_only == pytest.approx(bce, rel=1e-5) and l1_only == pytest.approx(l1, rel=1e-5)
    np.testing.assert_allclose(grad, g_gan + 100 * g_l1, rtol=1e-3, atol=1e-6)
    assert np.abs(100 * g_l1).max() > np.abs(g_gan).max()          # at lambda = 100 L1 dominates


def _learnables(prefixes):
    return {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()
            if k.split("/")[0].startswith(prefixes) and k.rsplit("/", 1)[1] not in ("mean", "var")}


def test_each_optimizer_changes_only_its_half():
    graph = parse_graph(str(PIX2PIX))
    nets, rng = build_all(graph, 4, seed=1)
    steps = {o.name: OptimizerStep(o, nets[o.network]) for o in graph.optimizers}
    unet, patch = ("E1", "E2", "Bottleneck", "D1", "D2"), ("P1", "P2", "P3")
    for name, learns, frozen in (("Generator", unet, patch), ("DiscriminatorFake", patch, unet),
                                 ("DiscriminatorReal", patch, unet)):
        before_l, before_f = _learnables(learns), _learnables(frozen)
        steps[name](_batch(seed=3), rng, 0)
        after_l, after_f = _learnables(learns), _learnables(frozen)
        assert all(np.array_equal(before_f[k], after_f[k]) for k in before_f), name
        assert all(not np.array_equal(before_l[k], after_l[k]) for k in before_l), name


def test_cli_trains_on_derived_edges_and_infer_translates_the_test_split(tmp_path, fake_fashion, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", str(PIX2PIX), "--epochs", "1", "--batch-size", "8", "--quiet"]) == 0
    run = next(Path("runs").iterdir())
    # the monitors log the total and each term; the logged total is GAN + 100 x L1 at every point
    series = {n: np.loadtxt(run / "monitor" / f"{n}-loss.series.txt", ndmin=2)
              for n in ("Generator", "Generator-GAN", "Generator-L1")}
    assert len(series["Generator"]) >= 2
    assert (series["Generator-GAN"][:, 0] == series["Generator"][:, 0]).all()
    np.testing.assert_allclose(series["Generator"][:, 1],
                               series["Generator-GAN"][:, 1] + 100 * series["Generator-L1"][:, 1], rtol=1e-3)
    assert not (run / "monitor" / "DiscriminatorReal-DReal-loss.series.txt").exists()  # one term: the total
    assert cli.main(["infer", "--num", "6", "--out", "edges.png"]) == 0
    tile = np.asarray(Image.open("edges.png").convert("L"))
    cells = (tile.shape[0] + 2) // 30 * ((tile.shape[1] + 2) // 30)
    assert cells >= 6 and tile.shape[0] % 30 == 28 and tile.shape[1] % 30 == 28
    # feeding an edge folder of our own: one output per image
    Path("mine").mkdir()
    for i in range(3):
        Image.fromarray(((np.random.RandomState(i).rand(28, 28) < 0.1) * 255).astype(np.uint8)).save(f"mine/{i}.png")
    assert cli.main(["infer", "--input", "a=mine", "--num", "10", "--out", "mine.png"]) == 0
    assert "3 images" in capsys.readouterr().out


def test_real_use_paired_folders_train_the_same_graph(tmp_path, monkeypatch):
    """A/ and B/ with files of the same names feed a and b, resized to the graph's 28x28."""
    for side in ("A", "B"):
        (tmp_path / "pairs" / side).mkdir(parents=True)
    items = synthetic_items(8, 4)
    for i, item in enumerate(items):
        Image.fromarray(item[0]).resize((56, 56)).save(tmp_path / "pairs" / "B" / f"{i}.png")
        Image.fromarray(255 - item[0]).convert("RGB").save(tmp_path / "pairs" / "A" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    dataset = f"dataset={{folder: {tmp_path / 'pairs'}, size: [1, 28, 28]}}"
    assert cli.main(["train", str(PIX2PIX), "--set", dataset, "--epochs", "1", "--batch-size", "4", "--quiet"]) == 0
    run = next(Path("runs").iterdir())
    assert (run / "checkpoints" / "epoch_0001" / "parameters.h5").is_file()
    assert cli.main(["infer", "--input", str(tmp_path / "pairs" / "A"), "--num", "8", "--out", "out.png"]) == 0
    assert np.asarray(Image.open("out.png")).shape[:2] == (88, 88)  # 8 images: a 3x3 grid of 28 + gaps
