"""nncgan eval: a classifier graph trained by nncgan reads images back; the numbers behave as they must.

One tiny classifier (1024 real MNIST images, one epoch) and one tiny cgan run (trained after the
classifier, so its per-epoch scores are written) serve the whole module.
"""
import json
import re

import h5py
import numpy as np
import pytest

from nncgan import cli, run as runs
from nncgan.errors import RunError
from nncgan.eval import classifier as C, metrics as M, report
from nncgan.eval.score import Reference, score

from conftest import CGAN, use_small_mnist

NUM = 30  # test images per label fed in as if generated (the small test split has >= 80 of each)


@pytest.fixture(scope="module")
def trained(mnist_classifier):
    root = mnist_classifier.parent.parent  # the session's classifier (conftest), in ROOT/runs/clf
    with pytest.MonkeyPatch.context() as mp:
        data = use_small_mnist(mp)
        data["n"] = 256  # the GAN only needs to run
        logs = []
        from nncgan.train import loop
        from nncgan.graph.parse import parse_graph
        graph = parse_graph(CGAN)
        graph.config.batch_size = 128
        run = runs.new_run(graph, root / "runs" / "gan")
        loop.train(graph, run, max_epoch=2, log=logs.append, quiet=True)
        yield {"root": root, "clf": root / "runs" / "clf", "gan": run, "logs": logs, "data": data}


@pytest.fixture
def small(trained):
    trained["data"]["n"] = 1024  # "mnist" is its first 1024 images (of each split) in every test
    return trained


def _test_split():
    from nncgan.data.spec import DatasetSpec
    test = DatasetSpec("mnist").load("test")
    return test["x"].astype(np.float32) / 255, test["y"][:, 0]


def test_classifier_run_has_its_test_accuracy_and_no_generator_outputs(small):
    clf_run = small["clf"]
    assert runs.read_info(clf_run)["status"] == "finished"
    saved = json.loads((clf_run / "eval" / "classifier.json").read_text())
    x, y = _test_split()
    clf = C.Classifier(clf_run)
    acc = float((clf(x)[0].argmax(1) == y).mean())
    assert saved == {"epoch": 1, "test_accuracy": acc, "test_samples": 1024}
    assert acc > 0.6  # it learned: chance is 0.1
    series = (clf_run / "monitor" / "eval-test_accuracy.series.txt").read_text().split()
    assert series[0] == "1" and float(series[1]) == pytest.approx(acc, abs=1e-6)
    assert not (clf_run / "samples").exists()  # a classifier draws no tiles


def test_classifier_parameters_stay_out_of_the_global_registry(small):
    import nnabla as nn
    nn.clear_parameters()
    C.Classifier(small["clf"])
    assert nn.get_parameters(grad_only=False) == {}
    with h5py.File(small["gan"] / "checkpoints" / "epoch_0002" / "parameters.h5", "r") as f:
        names = []
        f.visit(names.append)
    assert names and not any(n.startswith("classifier") for n in names)


def test_real_test_images_score_as_real_data(small):
    r = report.evaluate(None, num=NUM, source="test", dataset="mnist", classifier=small["clf"])
    images, labels = report.real_as_generated(Reference(C.Classifier(small["clf"]), NUM * 10, 0), NUM, 0, "test")
    clf = C.Classifier(small["clf"])
    pred = clf(images)[0].argmax(1)
    assert r["label_accuracy"] == pytest.approx(float((pred == labels).mean()))
    for c in range(10):
        assert r[f"label_accuracy_{c}"] == pytest.approx(float((pred[labels == c] == c).mean()))
    assert r["samples"] == 10 * NUM and r["samples_per_label"] == NUM
    assert 0 < r["fid"] <= 1.5 * r["fid_floor"]  # at the real-vs-real floor
    noise = score(clf, Reference(clf, NUM * 10, 0), np.random.RandomState(0).rand(10 * NUM, 1, 28, 28),
                  labels)
    assert noise["fid"] > 10 * r["fid"]
    assert r["class_entropy_ratio"] > 0.9 and r["pairwise_distance_ratio_min"] > 0.7
    assert r["precision"] > 0.6 and r["recall"] > 0.6 and not r["collapse"]
    assert noise["precision"] < 0.1


def test_one_image_repeated_is_flagged_as_collapse(small):
    r = report.evaluate(None, num=NUM, source="repeat", dataset="mnist", classifier=small["clf"])
    assert r["collapse"] is True
    assert any("class histogram collapsed" in m for m in r["collapse_reasons"])
    assert any(m.startswith("labels 0, 1, 2") for m in r["collapse_reasons"])
    assert r["class_entropy"] == 0.0 and r["pairwise_distance"] < 1e-5
    assert r["recall"] < 0.05      # one point covers none of the real set
    assert max(r[f"predicted_fraction_{c}"] for c in range(10)) == 1.0


def test_eval_of_a_gan_run_prints_what_it_writes(small, capsys, monkeypatch):
    monkeypatch.chdir(small["root"])
    assert cli.main(["eval", str(small["gan"]), "--num", "20", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    r = json.loads((small["gan"] / "eval" / "eval.json").read_text())
    assert r["epoch"] == 2 and r["samples"] == 200 and r["seed"] == 3 and r["source"] == "generator"
    assert r["classifier"] == str(small["clf"].resolve()) and r["classifier_epoch"] == 1
    assert f"Frechet distance (classifier features)  {r['fid']:.3f}   floor {r['fid_floor']:.3f}: " \
           f"{r['fid_floor_train_images']} real train vs {r['fid_floor_test_images']} test images" in out
    row = re.search(r"read as\s+(.*)", out).group(1).split()
    assert row == [f"{r[f'label_accuracy_{c}']:.1%}" for c in range(10)] + [f"{r['label_accuracy']:.1%}"]
    assert f"{r['precision']:.3f} / {r['recall']:.3f}" in out
    assert ("MODE COLLAPSE" in out) == r["collapse"]
    assert all(not isinstance(v, dict) for v in r.values())  # flat, for tables


def test_eval_without_a_classifier_names_the_command(tmp_path, small, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(C.ENV, raising=False)
    gan = tmp_path / "runs" / "gan"
    import shutil
    shutil.copytree(small["gan"], gan)
    assert cli.main(["eval", str(gan)]) == 2
    err = capsys.readouterr().err
    assert "no trained classifier for dataset 'mnist'" in err
    assert "nncgan train classifier_mnist " in err and "Traceback" not in err  # the bundled sample, by name
    # --classifier, or $NNCGAN_CLASSIFIER_RUNS, finds it
    monkeypatch.setenv(C.ENV, str(small["clf"].parent))
    assert C.find("mnist", ["runs"]) == small["clf"].resolve()


def test_training_scores_each_epoch_into_the_monitors(small):
    gan = small["gan"]
    logs = small["logs"]
    assert any("scoring each epoch's samples with the classifier" in l for l in logs)
    for name in ("label_accuracy", "fid", "class_entropy_ratio", "precision", "recall"):
        rows = [l.split() for l in (gan / "monitor" / f"eval-{name}.series.txt").read_text().splitlines()]
        assert [r[0] for r in rows] == ["1", "2"], name
        assert all(np.isfinite(float(r[1])) for r in rows)
    acc = [float(l.split()[1]) for l in (gan / "monitor" / "eval-label_accuracy.series.txt").read_text().splitlines()]
    assert all(0 <= a <= 1 for a in acc)
    assert sum(l.startswith("epoch 2 eval: label accuracy") for l in logs) == 1


def test_collapse_during_training_is_warned(small):
    import shutil
    from nncgan.eval import hook
    gan = small["root"] / "runs" / "collapsing"
    shutil.copytree(small["gan"], gan)
    logs = []
    ev = hook.for_training(_graph(), gan, _OneImageSampler(), log=logs.append, resume_epoch=1)
    r = ev(2)  # epoch 2 again, as a resumed run would: its old point is replaced
    assert r["collapse"] and any(l.startswith("epoch 2: warning: mode collapse: class histogram collapsed")
                                 for l in logs)
    rows = [l.split() for l in (gan / "monitor" / "eval-class_entropy_ratio.series.txt").read_text().splitlines()]
    assert [x[0] for x in rows] == ["1", "2"] and float(rows[1][1]) == 0.0


def test_no_eval_leaves_the_monitors_alone(small):
    from nncgan.train import loop
    small["data"]["n"] = 128
    graph = _graph()
    graph.config.batch_size = 64
    run = runs.new_run(graph, small["root"] / "runs" / "noeval")
    loop.train(graph, run, max_epoch=1, log=lambda *a: None, quiet=True, evaluate=False)
    assert not list((run / "monitor").glob("eval-*"))


def _graph():
    from nncgan.graph.parse import parse_graph
    return parse_graph(CGAN)


class _OneImageSampler:
    """Stands in for the executor: every image is the same real digit."""
    conditional, classes, n = True, 10, 100

    class output:
        shape = (100, 1, 28, 28)

    def draw(self, labels, rng):
        x, _ = _test_split()
        return np.repeat(x[:1], self.n, axis=0)


def test_metrics_on_known_inputs():
    rng = np.random.RandomState(0)
    a = rng.randn(400, 8)
    g = M.gaussian(a)
    assert M.frechet_distance(g, g) == pytest.approx(0, abs=1e-9)
    shifted = (g[0] + 2, g[1])
    assert M.frechet_distance(g, shifted) == pytest.approx(4 * 8)
    from scipy import linalg
    b = M.gaussian(rng.randn(300, 8) @ rng.randn(8, 8))
    root = linalg.sqrtm(g[1] @ b[1]).real
    want = ((g[0] - b[0]) ** 2).sum() + np.trace(g[1] + b[1] - 2 * root)
    assert M.frechet_distance(g, b) == pytest.approx(want, rel=1e-6)
    assert M.entropy(np.full(10, 0.1)) == pytest.approx(np.log(10))
    assert M.precision_recall(a, a) == (1.0, 1.0)
    p, r = M.precision_recall(a, a[:1].repeat(50, 0))
    assert p == 1.0 and r < 0.02
    assert M.mean_pairwise_distance(np.array([[0.0, 0], [3, 4]])) == pytest.approx(5)
    probs = np.eye(3)[[0, 1, 1, 2]]
    assert M.label_accuracy(probs, [0, 1, 2, 2], 3) == (0.75, [1.0, 1.0, 0.5])


def test_classifier_lookup_prefers_the_first_folder_then_the_latest_finished(tmp_path, monkeypatch):
    monkeypatch.delenv(C.ENV, raising=False)

    def fake(folder, started, status="finished", name="classifier_mnist"):
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "latest").write_text("epoch_0001")
        runs.write_info(folder, {"graph": "g.yaml", "name": name, "started": started, "status": status})
        return folder.resolve()

    old = fake(tmp_path / "a" / "old", "2026-01-01T00:00:00")
    fake(tmp_path / "a" / "newer-but-stopped", "2026-02-01T00:00:00", status="stopped")
    fake(tmp_path / "a" / "fashion", "2026-03-01T00:00:00", name="classifier_fashion")
    newest = fake(tmp_path / "b" / "newest", "2026-04-01T00:00:00")
    assert C.find("mnist", [tmp_path / "a", tmp_path / "b"]) == old
    assert C.find("mnist", [tmp_path / "b", tmp_path / "a"]) == newest
    monkeypatch.setenv(C.ENV, str(tmp_path / "b"))
    assert C.find("mnist", [tmp_path / "nothing"]) == newest
    with pytest.raises(RunError, match="train one with: nncgan train classifier_fashion "):
        C.find("fashion-mnist", [tmp_path / "b"])
