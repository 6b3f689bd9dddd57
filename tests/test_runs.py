"""`nncgan runs`: every run with its epochs, last losses and a truthful status, newest first."""
import os
import subprocess
import sys

from nncgan import cli, run as runs
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
