"""graphs/cyclegan.yaml: NNC layout, loss terms and weights, frozen scopes, both runtime networks, A->B->A."""
from pathlib import Path

import numpy as np
import nnabla as nn
import pytest
from PIL import Image

from nncgan import cli, inference
from nncgan.builder import build_all
from nncgan.feeds import first_samples_of_split
from nncgan.data.spec import DatasetSpec
from nncgan.graph.parse import parse_graph
from nncgan.train.optimizer import OptimizerStep

from conftest import use_image_splits

ROOT = Path(__file__).resolve().parents[1]
CYCLEGAN = ROOT / "graphs" / "cyclegan.yaml"
ABA = ROOT / "graphs" / "cyclegan_aba.pipeline.yaml"
G_AB, G_BA, D_A, D_B = "GAB_", "GBA_", "DA_", "DB_"


def synthetic_digits(n, seed=0):
    """uint8 (n, 1, 28, 28): a few 2-3 pixel wide strokes each, like handwriting."""
    rng = np.random.RandomState(seed)
    x = np.zeros((n, 1, 28, 28), np.uint8)
    for i in range(n):
        for _ in range(2):
            r, c = rng.randint(6, 20, 2)
            if rng.rand() < 0.5:
                x[i, 0, r:r + 2, 5:23] = 255
            else:
                x[i, 0, 5:23, c:c + 3] = 255
    return x


@pytest.fixture
def fake_mnist(monkeypatch):
    return use_image_splits(monkeypatch, "mnist", {"train": synthetic_digits(32, 1), "test": synthetic_digits(12, 2)})


def cells(png, n, size=28, gap=2):
    """The first `n` images of a tiled picture, in [0, 1]."""
    img = np.asarray(Image.open(png).convert("L"), np.float32) / 255
    cols = (img.shape[1] + gap) // (size + gap)
    return np.stack([img[(i // cols) * (size + gap):][:size, (i % cols) * (size + gap):][:, :size] for i in range(n)])


def _batch(n=4, seed=0):
    x = synthetic_digits(2 * n, seed).astype(np.float32) / 255
    return {"a": x[:n], "b": np.minimum(x[n:] * 1.0 + np.roll(x[n:], 1, axis=3), 1.0)}


def test_networks_are_laid_out_as_nnc_tabs():
    g = parse_graph(str(CYCLEGAN))
    assert list(g.networks) == ["Generator", "DiscriminatorA", "DiscriminatorB", "RuntimeAtoB", "RuntimeBtoA"]
    gen = g.networks["Generator"]
    # the six generator passes: which generator (scope) each is, and what it reads
    passes = {l.name[:-len("_C1")]: (l.scope, l.inputs[0]) for l in gen.layers if l.name.endswith("_C1")}
    assert passes == {"FakeB": ("GAB_C1", "A"), "FakeA": ("GBA_C1", "B"), "RecA": ("GBA_C1", "FakeB_Image"),
                      "RecB": ("GAB_C1", "FakeA_Image"), "IdtA": ("GBA_C1", "A"), "IdtB": ("GAB_C1", "B")}
    mult = {l.scope: l.lr_mult.get("W") for l in gen.layers if "W" in l.lr_mult}
    assert all(m == 1 for s, m in mult.items() if s.startswith((G_AB, G_BA)))
    assert all(m == 0 for s, m in mult.items() if s.startswith((D_A, D_B)))      # both discriminators frozen
    for name, learns, frozen, absent in (("DiscriminatorA", D_A, G_BA, (D_B, G_AB)),
                                         ("DiscriminatorB", D_B, G_AB, (D_A, G_BA))):
        mult = {l.scope: l.lr_mult.get("W") for l in g.networks[name].layers if "W" in l.lr_mult}
        assert all(m == (1 if s.startswith(learns) else 0) for s, m in mult.items())
        assert any(s.startswith(frozen) for s in mult) and not any(s.startswith(absent) for s in mult)
    assert g.networks["RuntimeAtoB"].layer("C1").scope == "GAB_C1"
    assert g.networks["RuntimeBtoA"].layer("C1").scope == "GBA_C1"
    assert {e: x.network for e, x in g.executors.items()} == {"AtoB": "RuntimeAtoB", "BtoA": "RuntimeBtoA"}


def test_generator_loss_is_the_weighted_sum_of_six_terms():
    graph = parse_graph(str(CYCLEGAN))
    nets, rng = build_all(graph, 4, seed=1)
    net, b = nets["Generator"], _batch()
    assert {k: w for k, (w, _) in net.loss_terms.items()} == {
        "AdvB": 1.0, "AdvA": 1.0, "CycleA": 10.0, "CycleB": 10.0, "IdentityA": 5.0, "IdentityB": 5.0}
    assert set(net.data) == {"a", "b"}  # two dataset variables in one batch
    net.feed(b, rng)
    net.loss.forward()
    o = {k: v.d for k, v in net.outputs.items()}
    terms = {"AdvB": np.mean((o["DB_Score"] - 1) ** 2), "AdvA": np.mean((o["DA_Score"] - 1) ** 2),
             "CycleA": np.mean(np.abs(o["RecA_Image"] - b["a"])), "CycleB": np.mean(np.abs(o["RecB_Image"] - b["b"])),
             "IdentityA": np.mean(np.abs(o["IdtA_Image"] - b["a"])), "IdentityB": np.mean(np.abs(o["IdtB_Image"] - b["b"]))}
    assert o["DB_Score"].shape == (4, 1, 7, 7)
    weights = {"AdvB": 1, "AdvA": 1, "CycleA": 10, "CycleB": 10, "IdentityA": 5, "IdentityB": 5}
    assert float(net.loss.d) == pytest.approx(sum(weights[k] * v for k, v in terms.items()), rel=1e-5)
    # and the discriminators' halves at 0.5 each
    d = nets["DiscriminatorA"]
    d.feed(b, rng)
    d.loss.forward()
    real, fake = d.outputs["Real_Score"].d, d.outputs["Fake_Score"].d
    assert float(d.loss.d) == pytest.approx(0.5 * np.mean((real - 1) ** 2) + 0.5 * np.mean(fake ** 2), rel=1e-5)


def _learnables():
    return {k: v.d.copy() for k, v in nn.get_parameters(grad_only=False).items()
            if k.rsplit("/", 1)[1] not in ("mean", "var")}


@pytest.mark.parametrize("optimizer, learns", [("Generator", (G_AB, G_BA)), ("DiscriminatorA", (D_A,)),
                                               ("DiscriminatorB", (D_B,))])
def test_each_step_changes_exactly_its_scopes(optimizer, learns):
    graph = parse_graph(str(CYCLEGAN))
    nets, rng = build_all(graph, 4, seed=1)
    opt = next(o for o in graph.optimizers if o.name == optimizer)
    step = OptimizerStep(opt, nets[opt.network])
    before = _learnables()
    step(_batch(seed=5), rng, 0)
    after = _learnables()
    assert {k.split("_")[0] + "_" for k in before} == {G_AB, G_BA, D_A, D_B}
    for k in before:
        changed = not np.array_equal(before[k], after[k])
        assert changed == k.startswith(learns), k


def test_cli_trains_and_both_runtime_networks_draw_and_the_round_trip_runs(tmp_path, fake_mnist, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # 64 steps (128 images, batch 4, 2 epochs) at a 10x step: enough for both directions to learn
    use_image_splits(monkeypatch, "mnist", {"train": synthetic_digits(128, 1), "test": synthetic_digits(12, 2)})
    fast = [a for o in ("Generator", "DiscriminatorA", "DiscriminatorB") for a in ("--set", f"optimizers.{o}.solver.alpha=0.002")]
    assert cli.main(["train", str(CYCLEGAN), "--epochs", "2", "--batch-size", "4", "--quiet", "--no-eval"] + fast) == 0
    run = next(Path("runs").iterdir())
    assert (run / "samples" / "epoch_0001.png").is_file()
    for ex in ("AtoB", "BtoA"):
        assert cli.main(["infer", "--executor", ex, "--num", "4", "--out", f"{ex}.png"]) == 0
        assert np.asarray(Image.open(f"{ex}.png").convert("L")).shape == (58, 58)  # 2x2 cells of 28 + gap
    # the two directions are two generators: the same image goes through different parameters
    x = synthetic_digits(3, 7).astype(np.float32) / 255
    outs = {}
    for ex, var in (("AtoB", "a"), ("BtoA", "b")):
        loaded = inference.load(run, 3, ex)
        outs[ex] = loaded.sampler.draw(None, np.random.RandomState(0), feed={var: x})
        assert outs[ex].shape == (3, 1, 28, 28) and 0 <= outs[ex].min() and outs[ex].max() <= 1
    assert not np.allclose(outs["AtoB"], outs["BtoA"])
    # A -> B -> A as a pipeline of the two runtime networks, on the first test images of A: trained
    # with the cycle loss, the round trip comes back closer to A than the translation A -> B is.
    assert cli.main(["infer", str(ABA), "--num", "4", "--out", "aba.png"]) == 0
    assert "stage aba: 4 images (1, 28, 28)" in capsys.readouterr().out
    a = first_samples_of_split(parse_graph(str(CYCLEGAN)), ["a"], 4)["a"][:, 0]
    ab, aba = cells("aba.ab.png", 4), cells("aba.png", 4)
    d = {"aba-a": float(np.abs(aba - a).mean()), "ab-a": float(np.abs(ab - a).mean())}
    assert d["aba-a"] < 0.9 * d["ab-a"], d  # (A -> B -> B, a wrong second stage, lands farther than A -> B)


def test_real_use_unpaired_folders_check(tmp_path):
    """trainA/ and trainB/ of different sizes and kinds are the graph's a and b."""
    for side, n in (("trainA", 3), ("trainB", 5)):
        (tmp_path / side).mkdir()
        for i in range(n):
            Image.fromarray(synthetic_digits(1, i + n)[0, 0]).resize((40, 40)).save(tmp_path / side / f"{i}.png")
    from nncgan.graph import overrides
    g, _ = overrides.load(str(CYCLEGAN), [f"dataset={{folder: {tmp_path}, size: [1, 28, 28]}}"])
    assert g.dataset.variables == {"a": (1, 28, 28), "b": (1, 28, 28)}
    data = g.dataset.load("train", log=lambda *a: None)
    assert len(data["a"]) == 5 and data.independent == ("b",)  # the larger set; B in its own order
