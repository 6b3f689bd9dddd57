"""kill -9 at every step of a resume and of a save of real training runs: the run always loads and
resumes, losing at most the epoch in progress.

The steps are named, not timed: a child process counts what it does to the run folder (each file
opened for writing, renamed, removed, each folder made or removed: Python's audit events) and each
optimizer step, and kills itself with SIGKILL at step number N. A first child lists the steps of
one `train --resume` that trains one more epoch; then a chain of children, each resuming what the
previous one left, is killed at each of those steps in turn. The children fork this (already
imported) test process and run `cli.main(["train", ...])`: separate processes, killed like any
other, without paying NNabla's import each time. The first run and the last resume are
`python -m nncgan.cli train` in fresh interpreters. NNCGAN_LIMIT_SAMPLES=16 with batches of 8
makes an epoch two iterations.
"""
import json
import os
import re
import signal
import subprocess
import sys
import traceback

import numpy as np
import nnabla as nn
import pytest

from nncgan import cli, run as runs
from nncgan.builder import build_all
from nncgan.data.spec import DatasetSpec
from nncgan.graph.parse import parse_graph
from nncgan.train import checkpoint, progress
from nncgan.train.optimizer import OptimizerStep

from conftest import CGAN, ROOT

LIMIT = "16"
FS_EVENTS = ("os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.symlink", "os.truncate",
             "os.link", "os.chmod")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@pytest.fixture
def args(mnist_dir):
    return ["--batch-size", "8", "--data-dir", str(mnist_dir), "--quiet", "--context", "cpu"]


def saved_epochs(log):
    """Epochs the process announced as saved ("epoch 3: ... (saved RUN)")."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    return [int(l.split(":")[0].split()[1]) for l in text.splitlines()
            if l.startswith("epoch ") and "(saved " in l]


def _step_name(event, args, root):
    """"what" for an audit event that changes something under `root` (or an optimizer step); else None."""
    if event == "nncgan.test.step":
        return f"step {args[0]}"
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
        kind = "write"
    elif event in FS_EVENTS:
        path, writes, kind = args[0], True, event
    else:
        return None
    if not writes or not isinstance(path, (str, bytes, os.PathLike)):
        return None
    path = os.fsdecode(path)
    if not os.path.abspath(path).startswith(root + os.sep):
        return None
    return f"{kind} {os.path.relpath(os.path.abspath(path), root)}"


def install_kill_points(run, steps_log, kill_at):
    """In a child: note each step in `steps_log`; SIGKILL this process at the first step of the kind
    `kill_at` (see generic())."""
    fd = os.open(steps_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)  # opened before the hook
    root = os.path.abspath(run)
    real_call = OptimizerStep.__call__

    def announced_step(self, *a):
        sys.audit("nncgan.test.step", self.opt.name)
        return real_call(self, *a)
    OptimizerStep.__call__ = announced_step

    def hook(event, args):
        what = _step_name(event, args, root)
        if what is None:
            return
        os.write(fd, f"{what}\n".encode())
        if generic(what) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    sys.addaudithook(hook)  # for good: the child ends with os._exit


def fork_train(argv, log, run=None, steps_log=None, kill_at=None):
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
            if steps_log is not None:
                install_kill_points(run, steps_log, kill_at)
            rc = cli.main(argv)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(rc)
    return pid


def generic(step):
    """A step without its numbers (epochs, pids): what kind of moment it is."""
    if step is None:
        return None
    # safeio's temporary files (.NAME.<random>.tmp.EXT, mkstemp's random part) are one kind of moment too
    step = re.sub(r"(\.[^/\s]+?\.)[A-Za-z0-9_]{8}(\.tmp)", r"\1R\2", step)
    # each network's series file and step is the same moment for the run folder's safety
    step = re.sub(r"\b(Generator|DiscriminatorFake|DiscriminatorReal)\b", "NET", step)
    return re.sub(r"\d+", "N", step)


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


def kill_and_resume(tmp_path, args, rounds=1):
    run = tmp_path / "run"
    ckpt = run / checkpoint.CKPT_DIR
    env = {**os.environ, "NNCGAN_LIMIT_SAMPLES": LIMIT, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}

    DatasetSpec("mnist").load("train", args[args.index("--data-dir") + 1], log=lambda *a: None)  # children inherit it
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot, tensorboardX  # noqa: E702,F401 (once, not per child)
    # A fresh interpreter, the command as a user types it: one epoch.
    first = subprocess.run([sys.executable, "-m", "nncgan.cli", "train", str(CGAN), "--epochs", "1",
                            "--out", str(run)] + args, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    before = latest_epoch(run)
    assert before == 1

    # The steps of one resume that trains one more epoch, on a copy of the run.
    probe = tmp_path / "probe"
    subprocess.run(["cp", "-a", str(run), str(probe)], check=True)
    pid = fork_train(["train", str(CGAN), "--resume", "--out", str(probe), "--epochs", "2"] + args,
                     tmp_path / "probe.log", probe, tmp_path / "probe.steps", kill_at=None)
    assert os.waitpid(pid, 0)[1] == 0, (tmp_path / "probe.log").read_text()
    kinds = list(dict.fromkeys(generic(s) for s in (tmp_path / "probe.steps").read_text().splitlines()))
    assert "step NET" in kinds and any(k.startswith("os.rename checkpoints/") for k in kinds), kinds

    killed_at, mid_save = [], 0
    for k in range(rounds * len(kinds)):  # a kill at each kind of step in turn, each resuming the last run
        log, steps_log = tmp_path / f"kill{k}.log", tmp_path / f"kill{k}.steps"
        # (two epochs at most: a step that never comes ends in a failure below, not in a hang)
        pid = fork_train(["train", str(CGAN), "--resume", "--out", str(run), "--epochs", str(before + 2)] + args,
                         log, run, steps_log, kill_at=kinds[k % len(kinds)])
        _, status = os.waitpid(pid, 0)
        # Still running when killed: it loaded and resumed the previous kill's run without error.
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (kinds[k % len(kinds)], log.read_text())
        killed_at.append(steps_log.read_text().splitlines()[-1])
        mid_save += saving(ckpt, pid)
        now = latest_epoch(run)
        announced = saved_epochs(log)
        assert now >= max(announced + [before]), (k, killed_at[-1], now, announced, before)  # nothing saved is lost
        assert now <= max(announced + [before]) + 1, (k, killed_at[-1], now, announced, before)  # nor invented
        assert runs.read_info(run)["graph"] == str(CGAN)
        before = now
    assert [generic(s) for s in killed_at] == kinds * rounds  # each child died where it was meant to

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
                           "--epochs", str(target)] + args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming {run} after epoch {before}" in done.stdout
    assert latest_epoch(run) == target and runs.read_info(run)["status"] == "finished"
    assert sorted(os.listdir(ckpt)) == [f"epoch_{target:04d}", "latest"]  # half-written epochs cleared
    for name in ("Generator", "DiscriminatorFake", "DiscriminatorReal"):
        lines = progress.series_file(run, name).read_text().splitlines()
        steps = [int(l.split()[0]) for l in lines]
        assert steps == sorted(set(steps)) and all(np.isfinite(float(l.split()[1])) for l in lines)
    return mid_save, before


def test_sigkill_at_each_step_of_a_resume_and_a_save_never_loses_a_saved_epoch(tmp_path, args):
    mid_save, epochs = kill_and_resume(tmp_path, args)
    assert mid_save >= 3  # kills inside a save do leave its temporary folder, before its rename
    assert epochs >= 2  # the kills after a save's rename keep the epoch it saved


@pytest.mark.slow
def test_sigkill_at_each_step_three_times_over(tmp_path, args):
    kill_and_resume(tmp_path, args, rounds=3)
