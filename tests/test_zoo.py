"""Issue 13: bench/zoo.py end to end (--quick, tiny data), its resume, and each zoo graph's real property:
stage 2 lifts its input, CycleGAN's round trip comes back closer than the translation, the
baselines learn without an adversary."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import nnabla as nn
import pytest

from nncgan import cli
from nncgan.builder import build_all, build_network
from nncgan.graph import overrides
from nncgan.train.optimizer import OptimizerStep

from conftest import ROOT, batch_for, dataset_dir

sys.path.insert(0, str(ROOT / "bench"))
import zoo  # noqa: E402

GRAPHS = ROOT / "graphs"
NUMBER = r"-?\d+\.\d+"


def _need_data():
    """Both datasets, found or fetched as `nncgan train` gets them (conftest.dataset_dir)."""
    global MNIST_DIR, FASHION_DIR
    MNIST_DIR, FASHION_DIR = dataset_dir("mnist"), dataset_dir("fashion-mnist")


def _zoo(*args, env=None):
    e = dict(os.environ, NNCGAN_MNIST_DIR=str(MNIST_DIR), NNCGAN_FASHION_MNIST_DIR=str(FASHION_DIR), **(env or {}))
    return subprocess.run([sys.executable, str(ROOT / "bench" / "zoo.py"), *args], capture_output=True, text=True,
                          env=e, timeout=1800)


def _epochs_logged(logfile):
    """The epochs in a run's --log-file, in order: each line `DATE TIME epoch N: ...` (one per epoch trained)."""
    return [int(m.group(1)) for m in re.finditer(r"^\S+ \S+ epoch (\d+):", logfile.read_text(), re.M)]


# 38 s here on an idle 2-core machine (41 segments trained inside the driver, one lane per dataset).
def test_quick_study_writes_every_systems_row_and_a_rerun_trains_nothing(tmp_path):
    _need_data()
    out, doc = tmp_path / "study", tmp_path / "doc.md"
    doc.write_text("# before\n\n<!-- zoo:begin -->\nold\n<!-- zoo:end -->\n\nafter\n")
    p = _zoo("--quick", "--out", str(out), "--doc", str(doc))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    text = doc.read_text()
    assert text.startswith("# before") and text.rstrip().endswith("after") and "\nold\n" not in text
    block = text[text.index(zoo.BEGIN):text.index(zoo.END)]
    T, S = zoo.plan(quick=True)
    for s in S:   # each system's row, with numbers in it
        rows = [ln for ln in block.splitlines() if ln.startswith(f"| {s.label} |")]
        assert rows, f"no row for {s.name} ({s.label})"
        assert all(len(re.findall(NUMBER, r)) >= 3 for r in rows), rows
    # three budgets per resolution-study system, from one run each (resumed, never retrained)
    for ds in zoo.DATA:
        for s in ("DCGAN at 28", "DCGAN at 14 + SRCNN x2", "multi-stage GAN (DCGAN 14 + stage 2)"):
            sec = block[block.index(f"Resolution study 14 -> 28, {zoo.DATA[ds]}"):]
            assert len([ln for ln in sec.split("###")[0].splitlines() if ln.startswith(f"| {s} |")]) == 3
        # the ceiling of a chain through 14: real test images down and up again, beside the systems
        for how in ("bicubic", "nearest"):
            rows = [ln for ln in sec.split("###")[0].splitlines()
                    if ln.startswith(f"| real test images at 14, up-scaled by {how} |")]
            assert len(rows) == 1 and len(re.findall(NUMBER, rows[0])) >= 5, rows
        # each budget scored as it comes, before the next trains (a study stopped mid-training keeps it)
        log = p.stdout.splitlines()
        assert log.index(f"zoo: scoring dcgan28_{ds} at epochs [1]") < \
            next(i for i, ln in enumerate(log) if ln.startswith(f"zoo: dcgan28_{ds}: training to epoch 2"))
        st = json.loads((out / "state" / f"dcgan28_{ds}.json").read_text())
        assert all(g["commit"] for g in st["segments"])    # the code each segment trained with
        st = json.loads((out / "state" / f"dcgan28_{ds}.json").read_text())
        assert [g["to_epoch"] for g in st["segments"]] == [1, 2, 3]
        assert all(g["wall_s"] > 0 and g["cpu_s"] > 0 for g in st["segments"])
        assert "--resume" in st["segments"][1]["command"] and "--resume" not in st["segments"][0]["command"]
        assert all("--resume" in g["command"] for g in st["segments"][1:])
        # each epoch trained once, in one run: a retrained epoch would log twice
        assert _epochs_logged(out / "runs" / f"dcgan28_{ds}.log") == [1, 2, 3]
        for e in (1, 2, 3):   # each budget's snapshot holds that epoch of the run
            assert json.loads((out / "snaps" / f"dcgan28_{ds}@e{e}" / "checkpoints" / f"epoch_{e:04d}" /
                               "state.json").read_text())["epoch"] == e
        assert (doc.parent / "zoo" / f"quality_vs_minutes_{ds}.png").is_file()
    assert all((doc.parent / "zoo" / f"{s.name}.png").is_file() for s in S if s.kind != "psnr")
    # CycleGAN's digits read by the classifier of all three stroke widths and, beside it, the plain one;
    # the widths classifier never stands in for the study's MNIST classifier (the Frechet features)
    from nncgan.eval import classifier as C
    from nncgan.runs import Run
    r = json.loads((out / "scores" / "cyclegan@2.json").read_text())["scores"]
    assert all(f"kept_{k}" in r and f"kept_{k}_plain" in r for k in ("a", "ab", "aba", "b", "ba", "bab"))
    assert dict(Run(out / "runs" / "classifier_strokes").graph().dataset.derive) == {"type": "stroke_widths"}
    assert Path(C.find("mnist", [str(out / "runs")])) == out / "runs" / "classifier_mnist"
    # a rerun finds everything done: no training, no scoring, the same tables
    again = _zoo("--quick", "--out", str(out), "--doc", str(doc))
    assert again.returncode == 0, again.stdout[-2000:]
    assert "training to" not in again.stdout and "scoring" not in again.stdout
    assert re.sub(r"this doc written \S+", "", doc.read_text()) == re.sub(r"this doc written \S+", "", text)


def test_a_training_killed_with_the_driver_resumes_from_its_last_epoch(tmp_path, monkeypatch):
    _need_data()
    for k, v in (("NNCGAN_MNIST_DIR", MNIST_DIR), ("NNCGAN_FASHION_MNIST_DIR", FASHION_DIR),
                 ("NNCGAN_LIMIT_SAMPLES", zoo.QUICK_LIMIT)):
        monkeypatch.setenv(k, str(v))   # what Study sets in this process, undone after the test
    study = zoo.Study(tmp_path / "zoo", True, 1.0, 2, log=lambda m: None)
    study.in_process = False   # each segment launched, as the full study does (--quick's own path: above)
    t = zoo.Training("dcgan", "graphs/dcgan.yaml", [], [1, 3])
    run = study.out / "runs" / "dcgan"
    assert zoo.train(study, zoo.Training("dcgan", "graphs/dcgan.yaml", [], [1]))
    # the driver was killed while it trained to epoch 3, after its child had saved epoch 2
    st = study.state("dcgan")
    st["running"] = {"to_epoch": 3, "started": __import__("time").time() - 1, "command": "killed"}
    zoo._write_json(study.state_path("dcgan"), st)
    assert cli.main(["train", "--resume", "--out", str(run), "--epochs", "2", "--quiet", "--no-eval",
                     "--context", "cpu", "--log-file", str(run) + ".log", str(GRAPHS / "dcgan.yaml")]) == 0
    assert zoo.train(study, t)
    st = study.state("dcgan")
    assert [g["to_epoch"] for g in st["segments"]] == [1, 2, 3]
    assert st["segments"][1]["cpu_s"] is None and st["segments"][1]["wall_s"] is not None   # from the log
    assert "--resume" in st["segments"][2]["command"]
    assert sorted(st["snapshots"]) == ["1", "3"]
    assert not st["snapshots"]["3"]["complete_times"]
    assert json.loads((study.snap("dcgan", 3) / "checkpoints" / "epoch_0003" / "state.json").read_text())["epoch"] == 3
    assert json.loads((study.snap("dcgan", 1) / "checkpoints" / "epoch_0001" / "state.json").read_text())["epoch"] == 1


def test_a_system_is_scored_once_the_classifiers_its_trainings_need_are_trained(tmp_path, monkeypatch):
    """A classifier added to the plan after a system's trainings were done (classifier_strokes for
    CycleGAN) is trained first; scoring before it would fail and be retried after every training."""
    import types
    study = zoo.Study(tmp_path / "zoo", True, 1.0, 2, log=lambda m: None)
    study.scorer = types.SimpleNamespace(real={})
    T, S = zoo.plan(quick=True)
    cyclegan = [s for s in S if s.name == "cyclegan"]
    snap = {"epoch": 1, "run": str(tmp_path / "snap"), "wall_s": 1.0, "cpu_s": 1.0}
    done = lambda name, **kw: zoo._write_json(study.state_path(name), dict(name=name, segments=[], done=True, **kw))  # noqa: E731
    done("cyclegan", snapshots={"1": snap})
    done("classifier_mnist", snapshots={})
    calls = []
    monkeypatch.setattr(zoo, "score_system", lambda *a: calls.append(a[2].name) or ({"x": 1.0}, None))
    zoo.score_all(study, cyclegan, T)
    assert calls == [] and not list(study.scores_dir().glob("cyclegan@*"))
    done("classifier_strokes", snapshots={})
    zoo.score_all(study, cyclegan, T)
    assert calls == ["cyclegan"] and (study.scores_dir() / "cyclegan@0.json").is_file()


def test_stroke_width_reads_the_width_of_a_bar():
    for w in (1, 2, 4):
        im = np.zeros((1, 1, 28, 28), np.float32)
        im[0, 0, 4:24, 10:10 + w] = 1.0
        assert zoo.stroke_width(im) == pytest.approx(w * 20 / (20 + w), rel=1e-6)   # area / half the perimeter


# --- stage 2 of the multi-stage GAN lifts its input ---------------------------------------------------------


def _stage2_runtime(n):
    g = overrides.load(GRAPHS / "multistage_gan.yaml")[0]
    built = build_network(g.networks["RuntimeGenerator"], n)
    low = built.data["x_low"][0]
    return built, low, built.outputs["image"]


def test_stage2_output_is_the_upscaled_input_plus_a_residual_and_follows_the_input():
    built, low, out = _stage2_runtime(4)
    rng = np.random.RandomState(0)
    a, b = rng.rand(4, 1, 14, 14).astype(np.float32), rng.rand(4, 1, 14, 14).astype(np.float32)
    outs = []
    for x in (a, b):
        for gen in built.generators:   # the same noise for both inputs
            gen.draw(np.random.RandomState(1))
        low.d = x
        out.forward()
        outs.append(out.d.copy())
    up = [np.kron(x, np.ones((1, 1, 2, 2), np.float32)) for x in (a, b)]
    # at initialisation the output is the nearest up-scaled input (the residual starts near zero) ...
    for o, u in zip(outs, up):
        assert np.abs(o - u).max() < 0.05
    # ... so a different input image gives a different output, by as much as the inputs differ
    assert np.abs(outs[0] - outs[1]).mean() > 0.9 * np.abs(up[0] - up[1]).mean()


def test_stage2_after_training_still_depends_on_its_input(small_mnist):
    small_mnist["n"] = 32
    g = overrides.load(GRAPHS / "multistage_gan.yaml")[0]
    nets, rng = build_all(g, 8, 0)
    steps = [OptimizerStep(o, nets[o.network]) for o in g.optimizers]
    from nncgan.feeds import first_samples
    info = g.dataset
    data = first_samples(info.load("train", None, log=lambda *a: None), ["x", "x_low"], 8, info.images)
    for i in range(10):
        for s in steps:
            s(data, rng, i)
    run = build_network(g.networks["RuntimeGenerator"], 8)
    outs = []
    for x in (data["x_low"], data["x_low"][::-1]):
        for gen in run.generators:
            gen.draw(np.random.RandomState(1))
        run.data["x_low"][0].d = x
        run.outputs["image"].forward()
        outs.append(run.outputs["image"].d.copy())
    # image k of the second batch is image 7-k of the first: the output moved with its input (each
    # position's noise map differs, which moves it far less than its input does)
    moved_with_input, moved_with_noise = np.abs(outs[0] - outs[1]).mean(), np.abs(outs[0] - outs[1][::-1]).mean()
    assert moved_with_input > 0.05 and moved_with_noise < 0.1 * moved_with_input, (moved_with_input, moved_with_noise)


# --- CycleGAN: A -> B -> A comes back closer to the source than A -> B -------------------------------------


def _cyclegan_l1s(sets=(), iterations=60):
    """L1 to the thin source a of A->B and of A->B->A on 8 test digits, after `iterations` steps of
    every optimizer on one fixed batch of 8 training pairs (in-process: ~30 s of CPU)."""
    g = overrides.load(GRAPHS / "cyclegan.yaml", list(sets))[0]
    nets, rng = build_all(g, 8, 0)
    steps = [OptimizerStep(o, nets[o.network]) for o in g.optimizers]
    from nncgan.feeds import first_samples
    info = g.dataset
    batch = first_samples(info.load("train", None, log=lambda *a: None), ["a", "b"], 8, info.images)
    a = first_samples(info.load("test", None, log=lambda *a: None), ["a"], 8, info.images)["a"]
    for i in range(iterations):
        for s in steps:
            s(batch, rng, i)

    def run(network, x):
        built = build_network(g.networks[network], 8)
        next(iter(built.data.values()))[0].d = x
        built.outputs["Image"].forward()
        return built.outputs["Image"].d.copy()
    ab = run("RuntimeAtoB", a)
    aba = run("RuntimeBtoA", ab)
    return np.abs(ab - a).mean(), np.abs(aba - a).mean()


def test_cyclegan_round_trip_is_closer_to_the_source_than_the_translation(small_mnist):
    """After a tiny training (60 iterations on one batch of 8). Not at initialisation: both generators
    then draw near-uniform grey (L1 to a: 0.479 for A->B, 0.476 for A->B->A); from about 40
    iterations on, the cycle term brings A->B->A back (seed 0: 0.165 vs 0.118 at 60)."""
    small_mnist["n"] = 64
    l1_ab, l1_aba = _cyclegan_l1s()
    assert l1_aba < 0.9 * l1_ab, (l1_aba, l1_ab)


# --- the baselines: no adversarial term ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["baseline_slp", "baseline_mlp", "baseline_deconv"])
def test_baselines_loss_is_a_pixel_loss_to_real_images_only(small_mnist, name):
    g = overrides.load(GRAPHS / f"{name}.yaml")[0]
    generator_scopes = {l.scope for l in g.networks[g.executor.network].layers if l.type != "Input"}
    for o in g.optimizers:
        net = g.networks[o.network]
        # no second network (a discriminator) inside what the optimizer trains
        losses = {l.name for l in net.losses}
        assert {l.scope for l in net.layers if l.type != "Input" and l.name not in losses} <= generator_scopes, o.name
        for loss in net.losses:
            target = net.layer(loss.inputs[1])
            # a GAN's loss is BCE/LSGAN against a Constant target; the baselines' targets are real images
            assert target.type == "Input" and target.settings["dataset"] == "x", (o.name, loss.name)
            assert target.settings["generator"] is None
    # and the value the solver minimises is the squared error to the batch's real images, nothing else
    nets, rng = build_all(g, 4, 0)
    net = nets[g.optimizers[0].network]
    batch = batch_for(net)
    net.feed(batch, rng)
    net.loss.forward()
    image = g.networks[g.optimizers[0].network].losses[0].inputs[0]
    pred = net.outputs[image].d
    assert float(net.loss.d) == pytest.approx(float(np.mean((pred - batch["x"]) ** 2)), rel=1e-5)
