"""The issue-4 zoo, first half: DCGAN at several sizes, SRCNN, the multi-stage GAN, the chains
(pipelines producing 2h images) and the non-GAN baselines, each trained a few iterations on tiny data."""
import numpy as np
import nnabla as nn
import pytest
from PIL import Image

from nncgan import cli
from nncgan.builder import build_all, build_network
from nncgan.graph import overrides
from nncgan.train.optimizer import OptimizerStep

from conftest import ROOT, batch_for

GRAPHS = ROOT / "graphs"
DCGAN14 = ["params.h=14", "networks.DiscriminatorReal.layers.0.dataset=x_low",
           "dataset={name: mnist, derive: {type: downscale, factor: 2}}"]


def _rgb_folder(tmp_path):
    for k in ("cats", "dogs"):
        (tmp_path / "rgb" / k).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.random.RandomState(i).randint(0, 255, (40, 50, 3), np.uint8)).save(
                tmp_path / "rgb" / k / f"{i}.png")
    return tmp_path / "rgb"


def _rgb_dcgan(folder, h):
    return overrides.load(GRAPHS / "dcgan.yaml", [f"params.h={h}", "params.c=3",
                                                  f"dataset={{folder: {folder}, size: [3, {h}, {h}]}}"])[0]


@pytest.mark.parametrize("h", [32, 64, 128])
def test_dcgan_checks_at_32_64_128_on_rgb_images(tmp_path, h):
    g = _rgb_dcgan(_rgb_folder(tmp_path), h)
    gen = g.networks["RuntimeGenerator"]
    assert gen.layer("Reshape").shape == (256, h // 8, h // 8)              # Dense to (256, h/8, h/8)
    assert gen.layer("Sigmoid").shape == (3, h, h)
    assert g.networks["DiscriminatorReal"].layer("Reshape_2").shape == (256 * (h // 8) ** 2,)


@pytest.mark.parametrize("h", [32, 64])
def test_dcgan_builds_and_draws_at_two_sizes(tmp_path, h):
    g = _rgb_dcgan(_rgb_folder(tmp_path), h)
    built = build_network(g.networks["RuntimeGenerator"], 2)
    for gen in built.generators:
        gen.draw(np.random.RandomState(0))
    out = built.outputs["image"]
    out.forward()
    assert out.shape == (2, 3, h, h) and 0 < out.d.min() and out.d.max() < 1


def test_dcgan_at_28_trims_the_next_multiple_of_8():
    g = overrides.load(GRAPHS / "dcgan.yaml")[0]
    assert g.params["pad"] == 4 and g.params["s"] == 4
    gen = g.networks["RuntimeGenerator"]
    assert gen.layer("Unpooling_3").shape == (64, 32, 32) and gen.layer("Sigmoid").shape == (1, 28, 28)


def _params(prefixes):
    return {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()
            if k.split("/")[0] in prefixes and k.rsplit("/", 1)[1] in ("W", "b", "beta", "gamma")}


def test_dcgan_steps_leave_the_frozen_half_unchanged(small_mnist):
    small_mnist["n"] = 8
    g = overrides.load(GRAPHS / "dcgan.yaml", DCGAN14)[0]
    nets, rng = build_all(g, 4, 0)
    steps = {o.name: OptimizerStep(o, nets[o.network]) for o in g.optimizers}
    gen_scopes = {l.scope for l in g.networks["RuntimeGenerator"].layers}
    dis_scopes = {l.scope for l in g.networks["DiscriminatorReal"].layers} - {"Input"}
    batch = {"x_low": np.random.RandomState(1).rand(4, 1, 14, 14).astype(np.float32)}
    for name, learns, frozen in (("Generator", gen_scopes, dis_scopes),
                                 ("DiscriminatorFake", dis_scopes, gen_scopes),
                                 ("DiscriminatorReal", dis_scopes, gen_scopes)):
        before_l, before_f = _params(learns), _params(frozen)
        steps[name](batch, rng, 0)
        after_l, after_f = _params(learns), _params(frozen)
        assert before_f and all((before_f[k] == after_f[k]).all() for k in before_f), name
        assert any((before_l[k] != after_l[k]).any() for k in before_l), name


def test_srcnn_trains_on_squared_error_and_its_loss_falls(small_mnist):
    g = overrides.load(GRAPHS / "srcnn.yaml", ["blocks.srcnn.layers.1.out_maps=16",
                                               "blocks.srcnn.layers.3.out_maps=8"])[0]
    nets, rng = build_all(g, 4, 0)
    main = nets["Main"]
    assert list(main.loss_terms) == ["Squared"] and main.loss_terms["Squared"][0] == 1.0
    assert g.networks["Main"].layer("Squared").type == "SquaredError"
    step = OptimizerStep(g.optimizers[0], main)
    batch = batch_for(main)
    losses = [step(batch, rng, i) for i in range(15)]
    assert losses[-1] < 0.5 * losses[0]


def test_multistage_generator_loss_is_the_weighted_sum(small_mnist):
    g = overrides.load(GRAPHS / "multistage_gan.yaml")[0]
    nets, rng = build_all(g, 4, 0)
    gen = nets["Generator"]
    assert {k: w for k, (w, _) in gen.loss_terms.items()} == {"GReal": 1.0, "Pixel": 100.0}
    assert g.networks["Generator"].layer("Pixel").type == "AbsoluteError"
    gen.feed(batch_for(gen), rng)
    gen.loss.forward()
    want = sum(w * float(np.mean(v.d)) for w, v in gen.loss_terms.values())
    assert float(gen.loss.d) == pytest.approx(want, rel=1e-5)
    # the skip connection: the output is the up-scaled stage-1 image plus a learned residual
    assert g.networks["RuntimeGenerator"].layer("Add2").inputs == ["Unpooling", "Convolution_4"]
    assert g.networks["RuntimeGenerator"].layer("Add2").shape == (1, 28, 28)


def _train(graph, out, sets=()):
    args = ["train", str(graph), "--out", str(out), "--quiet", "--context", "cpu", "--batch-size", "4",
            "--epochs", "1"]
    for s in sets:
        args += ["--set", s]
    assert cli.main(args) == 0


@pytest.mark.parametrize("pipeline, second, shrink", [
    ("dcgan_srcnn", "srcnn", ["blocks.srcnn.layers.1.out_maps=8", "blocks.srcnn.layers.3.out_maps=8"]),
    ("multistage", "multistage_gan", [])])
def test_pipelines_lift_14_to_28(tmp_path, small_mnist, monkeypatch, pipeline, second, shrink):
    small_mnist["n"] = 8
    monkeypatch.chdir(tmp_path)
    _train(GRAPHS / "dcgan.yaml", "runs/dcgan14", DCGAN14)
    _train(GRAPHS / f"{second}.yaml", "runs/second", shrink)
    stages = {"dcgan_srcnn": ("dcgan14", "srcnn"), "multistage": ("stage1", "stage2")}[pipeline]
    assert cli.main(["infer", str(GRAPHS / f"{pipeline}.pipeline.yaml"), "--num", "4", "--out", "p.png",
                     "--stage", f"{stages[1]}=runs/second"]) == 0
    first = np.asarray(Image.open(f"p.{stages[0]}.png"))
    final = np.asarray(Image.open("p.png"))
    assert first.shape == (2 * 14 + 2, 2 * 14 + 2)      # 2x2 tiles of 14x14 ...
    assert final.shape == (2 * 28 + 2, 2 * 28 + 2)      # ... lifted to 28x28


@pytest.mark.parametrize("name", ["baseline_slp", "baseline_mlp", "baseline_deconv"])
def test_baselines_train_without_a_discriminator(tmp_path, small_mnist, monkeypatch, name):
    small_mnist["n"] = 16
    g = overrides.load(GRAPHS / f"{name}.yaml")[0]
    assert [o.network for o in g.optimizers] == ["Generator"]
    assert [l.type for l in g.networks["Generator"].losses] == ["SquaredError"]
    assert not any(l.type == "BinaryCrossEntropy" for n in g.networks.values() for l in n.layers)
    monkeypatch.chdir(tmp_path)
    _train(GRAPHS / f"{name}.yaml", "run")
    assert cli.main(["infer", "--run", "run", "--label", "3", "--num", "4", "--out", "s.png"]) == 0
    assert np.asarray(Image.open("s.png")).shape == (58, 58)
