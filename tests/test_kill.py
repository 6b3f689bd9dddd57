"""kill -9 at random moments of real training runs: the run always loads and resumes, losing at most
the epoch in progress.

The first run is `python -m nncgan.cli train ...` in a fresh interpreter. The kills that follow
fork this (already imported) test process and run the same `cli.main(["train", ...])` in the
child: a separate process, killed by SIGKILL like any other, without paying NNabla's ~2 s import
each time, so 20 kills fit in CI. NNCGAN_LIMIT_SAMPLES=16 with batches of 8 makes an epoch two
iterations, so saves are a large share of the time; half of the kills wait for a save to start.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback

import numpy as np
import nnabla as nn
import pytest

from nncgan import cli, run as runs
from nncgan.builder import build_all
from nncgan.graph.parse import parse_graph
from nncgan.train import checkpoint, progress
from nncgan.train.solvers import OptimizerStep

from conftest import CGAN, MNIST_DIR, ROOT, mnist_available

pytestmark = pytest.mark.skipif(not mnist_available(), reason=f"MNIST files not found in {MNIST_DIR}")

LIMIT = "16"
ARGS = ["--batch-size", "8", "--data-dir", str(MNIST_DIR), "--quiet", "--context", "cpu"]
NEVER = "100000"  # --epochs for runs that are meant to be killed


def saved_epochs(log):
    """Epochs the process announced as saved ("epoch 3: ... (saved RUN)")."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    return [int(l.split(":")[0].split()[1]) for l in text.splitlines()
            if l.startswith("epoch ") and "(saved " in l]


def fork_train(argv, log):
    pid = os.fork()
    if pid == 0:  # the child: the real command, output to `log`, never back into pytest
        rc = 99
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)
            sys.stderr = open(2, "w", buffering=1, closefd=False)
            os.environ["NNCGAN_LIMIT_SAMPLES"] = LIMIT
            rc = cli.main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(rc)
    return pid


def wait_for(predicate, timeout, step=0.002):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False


def saving(ckpt, pid):
    """Whether process `pid` has a half-written epoch (checkpoint.save's temporary folder)."""
    try:
        return any(n.startswith(".epoch_") and n.endswith(f".tmp-{pid}") for n in os.listdir(ckpt))
    except FileNotFoundError:
        return False


def latest_epoch(run):
    folder = checkpoint.latest(run)  # verifies every file against the manifest
    state = json.loads((folder / checkpoint.STATE).read_text())
    assert folder.name == f"epoch_{state['epoch']:04d}"
    return state["epoch"]


def kill_and_resume(tmp_path, kills, seed):
    rnd = random.Random(seed)
    run = tmp_path / "run"
    ckpt = run / checkpoint.CKPT_DIR
    env = {**os.environ, "NNCGAN_LIMIT_SAMPLES": LIMIT, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}

    # A fresh interpreter, the command as a user types it; killed once it has saved an epoch.
    log0 = tmp_path / "first.log"
    with open(log0, "w") as out:
        p = subprocess.Popen([sys.executable, "-m", "nncgan.cli", "train", str(CGAN), "--epochs", NEVER,
                              "--out", str(run)] + ARGS, stdout=out, stderr=subprocess.STDOUT, env=env)
        assert wait_for(lambda: saved_epochs(log0) or p.poll() is not None, 120, 0.01), log0.read_text()
        time.sleep(rnd.uniform(0, 0.8))
        p.kill()
        assert p.wait() == -signal.SIGKILL, log0.read_text()
    before = latest_epoch(run)
    assert before >= max(saved_epochs(log0))

    mid_save = 0
    for k in range(kills):
        log = tmp_path / f"kill{k}.log"
        pid = fork_train(["train", str(CGAN), "--resume", "--out", str(run), "--epochs", NEVER] + ARGS, log)
        if k % 4 == 0:    # early: start-up, reading MNIST, loading the saved epoch
            time.sleep(rnd.uniform(0, 1.5))
        elif k % 4 == 2:  # after it has saved an epoch of its own: a step, a save, the sample tile
            wait_for(lambda: saved_epochs(log), 60, 0.01)
            time.sleep(rnd.uniform(0, 2.0))
        else:             # inside a save, which takes about a second here
            wait_for(lambda: saving(ckpt, pid), 60)
            time.sleep(rnd.uniform(0, 0.8))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        # Still running when killed: it loaded and resumed the previous kill's run without error.
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, log.read_text()
        mid_save += saving(ckpt, pid)
        now = latest_epoch(run)
        announced = saved_epochs(log)
        assert now >= max(announced + [before]), (k, now, announced, before)  # nothing saved is lost
        assert now <= max(announced + [before]) + 1, (k, now, announced, before)  # and nothing invented
        assert runs.read_info(run)["graph"] == str(CGAN)
        before = now

    # The run still loads into the graph, with every solver's state ...
    graph = parse_graph(run / runs.GRAPH_COPY)
    nn.clear_parameters()
    nets, _ = build_all(graph, 8, 0)
    solvers = {k: s for o in graph.optimizers for k, s in OptimizerStep(o, nets[o.network]).solvers.items()}
    assert checkpoint.load(run, solvers)["epoch"] == before
    nn.clear_parameters()
    # ... and a resume, in a fresh interpreter, reaches the target epoch.
    target = before + 2
    done = subprocess.run([sys.executable, "-m", "nncgan.cli", "train", str(CGAN), "--resume", "--out", str(run),
                           "--epochs", str(target)] + ARGS, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming {run} after epoch {before}" in done.stdout
    assert latest_epoch(run) == target and runs.read_info(run)["status"] == "finished"
    assert sorted(os.listdir(ckpt)) == [f"epoch_{target:04d}", "latest"]  # half-written epochs cleared
    for name in ("Generator", "DiscriminatorFake", "DiscriminatorReal"):
        lines = progress.series_file(run, name).read_text().splitlines()
        steps = [int(l.split()[0]) for l in lines]
        assert steps == sorted(set(steps)) and all(np.isfinite(float(l.split()[1])) for l in lines)
    return mid_save, before


def test_sigkill_at_20_random_moments_never_loses_a_saved_epoch(tmp_path):
    mid_save, epochs = kill_and_resume(tmp_path, 20, seed=6)
    assert mid_save >= 3  # the kills that wait for a save do land in one, before its rename
    assert epochs >= 1 + 20 // 4  # every fourth process saves an epoch of its own before its kill


@pytest.mark.slow
def test_sigkill_at_100_random_moments_never_loses_a_saved_epoch(tmp_path):
    kill_and_resume(tmp_path, 100, seed=int(time.time()))
