"""`nncgan runs`: every run with its epochs, last losses and a truthful status, newest first."""
import os
import subprocess
import sys

import pytest

from nncgan import cli, runs
from nncgan.graph.parse import parse_graph
from nncgan.runs_table import collect
from nncgan.train import loop

from conftest import CGAN


def dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_runs_lists_status_epochs_and_losses_newest_first(tmp_path, small_mnist, capsys):
    graph = parse_graph(CGAN)
    graph.config.batch_size = 32
    root = tmp_path / "runs"
    done = runs.new_run(graph, root / "done")
    state = loop.train(graph, done, max_epoch=1, log=lambda *a: None, quiet=True)
    runs.update_info(done, started="2026-01-01T10:00:00")
    info = runs.read_info(done)
    assert info["pid"] == os.getpid() and info["max_epoch"] == 1 and info["status"] == "finished"

    # killed mid-training (kill -9): run.json still says running, but its process is gone
    killed = runs.new_run(graph, root / "killed")
    runs.update_info(killed, started="2026-01-02T10:00:00", status="running", pid=dead_pid(), max_epoch=5,
                     host=info["host"])
    alive = runs.new_run(graph, root / "alive")   # this very process is "training" it
    runs.update_info(alive, started="2026-01-03T10:00:00", pid=os.getpid(), max_epoch=3, host=info["host"])

    rows = collect(root)
    assert [r["run"] for r in rows] == ["alive", "killed", "done"]
    assert [r["status"] for r in rows] == ["running", "interrupted", "finished"]
    assert (rows[2]["epoch"], rows[2]["max_epoch"]) == (1, 1)
    assert rows[2]["losses"] == state["losses"]["1"] and set(rows[2]["losses"]) == {
        "Generator", "DiscriminatorFake", "DiscriminatorReal"}

    assert cli.main(["runs", "--runs-dir", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["RUN", "GRAPH", "STARTED", "EPOCHS", "STATUS"]
    killed_line = next(l for l in out if l.startswith("killed"))
    assert "0/5" in killed_line and "interrupted" in killed_line
    done_line = next(l for l in out if l.startswith("done"))
    g = state["losses"]["1"]["Generator"]
    assert "1/1" in done_line and "finished" in done_line and f"Generator {g:.4f}" in done_line


def test_runs_with_no_runs_says_so(tmp_path, capsys):
    assert cli.main(["runs", "--runs-dir", str(tmp_path / "none")]) == 0
    assert capsys.readouterr().out.strip() == "no runs"


def _train(*args):
    """A quick run on real MNIST files: the first 64 samples, batches of 32."""
    from conftest import MNIST_DIR
    return cli.main(["train", *map(str, args), "--data-dir", str(MNIST_DIR), "--limit-samples", "64",
                     "--batch-size", "32", "--quiet", "--no-eval"])


@pytest.mark.parametrize("edit", ["broken", "renamed"])
def test_resume_opens_the_run_first_and_trains_its_own_graph_after_the_file_was_edited(tmp_path, capsys, edit):
    graph = tmp_path / "g.yaml"
    original = CGAN.read_text()
    graph.write_text(original)
    root = tmp_path / "runs"
    assert _train(graph, "--epochs", "1", "--runs-dir", root) == 0
    (run,) = root.iterdir()
    # edited after the run started: unreadable, or valid under another name and another size
    graph.write_text("name: [unclosed\n" if edit == "broken" else
                     original.replace("name: cgan_mnist", "name: other").replace("out_shape: 512", "out_shape: 256"))
    capsys.readouterr()
    assert _train(graph, "--resume", "--epochs", "2", "--runs-dir", root) == 0  # found without --out
    out = capsys.readouterr().out
    assert f"training {run / runs.GRAPH_COPY} in {run}" in out
    assert runs.read_info(run)["status"] == "finished" and (run / "checkpoints" / "epoch_0002").is_dir()
    assert (run / runs.GRAPH_COPY).read_text() == original
    assert [p.name for p in root.iterdir()] == [run.name]  # no new run was started
    assert _train(graph, "--resume", "--epochs", "3", "--out", run) == 0  # and with --out
    assert (run / "checkpoints" / "epoch_0003").is_dir()


def test_commands_without_a_run_never_take_a_classifier_whatever_its_name(tmp_path, capsys):
    """A classifier graph under a name of the user's (not one of the bundled classifier graphs')
    trained after the GAN: infer, report and export still take the GAN, and say so."""
    from conftest import ROOT
    root = tmp_path / "runs"
    assert _train(CGAN, "--epochs", "1", "--runs-dir", root) == 0
    clf = tmp_path / "digits.yaml"
    clf.write_text((ROOT / "graphs" / "classifier_mnist.yaml").read_text()
                   .replace("name: classifier_mnist", "name: my_digit_reader"))
    assert _train(clf, "--epochs", "1", "--runs-dir", root) == 0
    gan = next(d for d in root.iterdir() if d.name.endswith("cgan_mnist"))
    reader = next(d for d in root.iterdir() if d.name.endswith("my_digit_reader"))
    assert runs.read_info(reader)["kind"] == runs.CLASSIFIER and runs.read_info(gan)["kind"] == runs.GAN
    capsys.readouterr()
    assert cli.main(["infer", "--label", "3", "--num", "10", "--runs-dir", str(root)]) == 0
    assert f"drawing from {gan}, the latest GAN run" in capsys.readouterr().out
    assert (gan / "infer" / "label_3_seed0.png").is_file()
    assert cli.main(["report", "--runs-dir", str(root)]) == 0
    assert f"reporting {gan}, the latest GAN run" in capsys.readouterr().out
    assert cli.main(["export", "--runs-dir", str(root)]) == 0
    assert f"exporting {gan}, the latest GAN run" in capsys.readouterr().out


def test_finding_runs_by_graph_kind_and_status(tmp_path):
    graph = parse_graph(CGAN)
    root = tmp_path / "runs"
    for name, started, status in [("a", "2026-01-01", "finished"), ("b", "2026-01-02", "stopped"),
                                  ("c", "2026-01-03", "finished")]:
        run = runs.new_run(graph, root / name)
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "epoch_0001").mkdir()
        runs.update_info(run, started=started, status=status)
    runs.new_run(graph, root / "no-epoch")  # newest, but nothing saved: never found
    assert [r.name for r in runs.find(root)] == ["c", "b", "a"]
    assert [r.name for r in runs.find(root, status="finished")] == ["a", "c"][::-1]
    assert runs.latest(root, name="cgan_mnist", kinds=runs.DRAWS).name == "c"
    assert runs.Run(root / "c").kind == runs.GAN
    with pytest.raises(runs.RunError, match="no GAN run"):
        runs.latest(root, kinds=runs.DRAWS, name="other")
    assert runs.find(root, kinds=(runs.CLASSIFIER,)) == []


def test_an_epoch_loads_into_a_sampler_from_its_run_or_copied_out_of_it(tmp_path):
    """Run.sampler and an epoch folder kept elsewhere (bench/time_to_accuracy.py's) load alike."""
    import shutil
    import numpy as np
    assert _train(CGAN, "--epochs", "1", "--out", tmp_path / "r") == 0
    run = runs.Run(tmp_path / "r")
    loaded = run.sampler(4, no_ema=True)
    assert loaded.epoch == 1 and loaded.folder == run.latest_epoch() and loaded.run == run
    a = loaded.sampler.draw(np.arange(4), np.random.RandomState(3))
    kept = tmp_path / "kept" / "epoch_0001"
    shutil.copytree(loaded.folder, kept)
    b = runs.load_epoch(parse_graph(CGAN), 4, kept, no_ema=True).sampler.draw(np.arange(4), np.random.RandomState(3))
    assert a.shape == (4, 1, 28, 28) and np.array_equal(a, b) and a.std() > 0
    with pytest.raises(runs.RunError, match="no executor 'nope'"):
        run.sampler(4, executor="nope")
