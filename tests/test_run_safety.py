"""Issue 16, items 1-5 and 9: nothing lost, nothing written outside, full and read-only disks,
dead ends, wrong words, damaged files and FIFOs. Each fault is made for real where the machine
allows it (a small tmpfs, a read-only mount, SIGKILL at a named step via NNCGAN_FAIL_AT), and
injected otherwise."""
import contextlib
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import traceback

import nnabla as nn
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nncgan import cli, run as runs, safeio
from nncgan.errors import GraphError, RunError
from nncgan.graph.parse import parse_graph
from nncgan.train import checkpoint, loop, progress
from nncgan.train.optimizer import OptimizerStep

from conftest import CGAN, ROOT, use_small_mnist

SETTINGS = settings(derandomize=True, max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def cli_err(capsys, argv):
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.err


def tree(folder):
    """Every path under `folder` with its bytes (files) or None (folders): a snapshot to compare."""
    out = {}
    for dirpath, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(dirpath, d), folder)] = None
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, folder)] = open(p, "rb").read() if os.path.isfile(p) else "special"
    return out


def series_lines(run):
    return {p.name: p.read_text() for p in sorted((run / progress.MONITOR_DIR).glob("*-loss.series.txt"))}


def fork_cli(argv, env=None):
    """Run `nncgan ARGV` in a forked child (the test's patches included); its exit status."""
    pid = os.fork()
    if pid == 0:
        rc = 99
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.environ.update(env or {})
            rc = cli.main([str(a) for a in argv])
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(rc)
    return os.waitpid(pid, 0)[1]


@contextlib.contextmanager
def tmpfs(path, size):
    """A real small file system at `path` (root only); skipped where mount is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode(errors='replace').strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount_read_only(path):
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


SLP = ROOT / "graphs" / "baseline_slp.yaml"  # one Affine layer: epochs of 1 MB, quick to save


def _train_once(factory, graph_path, n=64):
    run = factory.mktemp("once") / "r"
    with pytest.MonkeyPatch.context() as mp:
        use_small_mnist(mp)["n"] = n
        graph = parse_graph(graph_path)
        graph.config.batch_size = 32
        runs.new_run(graph, run)
        runs.update_info(run, batch_size=32)
        loop.train(graph, run, max_epoch=1, log=lambda *a: None, quiet=True, evaluate=False)
    nn.clear_parameters()
    return run


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """One epoch of cgan_mnist on 64 images (2 iterations), trained once; tests copy it."""
    return _train_once(tmp_path_factory, CGAN)


@pytest.fixture(scope="module")
def slp_once(tmp_path_factory):
    return _train_once(tmp_path_factory, SLP)


def _copy(run, tmp_path, monkeypatch):
    use_small_mnist(monkeypatch)["n"] = 64
    return shutil.copytree(run, tmp_path / "r")


@pytest.fixture
def cgan_epoch(trained_once, tmp_path, monkeypatch):
    return _copy(trained_once, tmp_path, monkeypatch)


@pytest.fixture
def one_epoch(slp_once, tmp_path, monkeypatch):
    """A copy of a run with one saved epoch (baseline_slp: small epochs, quick saves)."""
    return _copy(slp_once, tmp_path, monkeypatch)


def resume_argv(run, epochs=2, graph=SLP):
    return ["train", graph, "--resume", "--out", run, "--epochs", epochs, "--quiet", "--no-eval"]


# ------------------------------------------------------------------ 1. data loss


def test_train_out_on_a_folder_that_is_not_a_run_is_refused_and_nothing_is_touched(tmp_path, capsys, monkeypatch):
    use_small_mnist(monkeypatch)["n"] = 64
    mine = tmp_path / "project"
    (mine / "checkpoints").mkdir(parents=True)
    (mine / "checkpoints" / "model.pt").write_bytes(b"weights of mine")
    (mine / "graph.yaml").write_text("my own graph")
    before = tree(mine)
    rc, err = cli_err(capsys, ["train", CGAN, "--out", mine, "--epochs", 1, "--batch-size", 32, "--quiet"])
    assert rc == 2 and f"{mine} is not empty and is not an nncgan run" in err and "checkpoints" in err, err
    assert tree(mine) == before


def test_keep_last_removes_only_nncgans_own_epochs(one_epoch, capsys):
    ckpt = one_epoch / "checkpoints"
    (ckpt / "notes.txt").write_text("mine")
    (ckpt / "epoch_0000").mkdir()  # an epoch-like folder without a manifest is not nncgan's
    (ckpt / "epoch_0000" / "keep.bin").write_bytes(b"x")
    rc, err = cli_err(capsys, resume_argv(one_epoch))
    assert rc == 0, err
    assert sorted(os.listdir(ckpt)) == ["epoch_0000", "epoch_0002", "latest", "notes.txt"]
    assert (ckpt / "epoch_0000" / "keep.bin").read_bytes() == b"x"


def test_of_two_trains_claiming_one_folder_exactly_one_wins_and_the_other_writes_nothing(tmp_path):
    graph = parse_graph(CGAN)
    out = tmp_path / "x"
    with runs.claim(graph, out) as run:   # the first, still starting (holds the folder)
        before = tree(run)
        other = parse_graph(CGAN)
        other.text = "name: other\n"
        with pytest.raises(RunError, match="in use by another nncgan train"):
            with runs.claim(other, out):
                pass
        assert tree(run) == before
    out2 = tmp_path / "y"
    out2.mkdir()
    fd = os.open(out2 / runs.LOCK, os.O_CREAT | os.O_EXCL | os.O_RDWR)  # the winner's very first act
    try:
        with pytest.raises(RunError):
            with runs.claim(graph, out2):
                pass
        assert sorted(os.listdir(out2)) == [runs.LOCK]  # the loser wrote no graph.yaml, no run.json
    finally:
        os.close(fd)


def test_two_processes_started_together_one_run_one_refusal(tmp_path, monkeypatch):
    """6 processes on one --out, each held at its first write until all 6 are there (or 5 s
    have passed): whoever writes before claiming the folder is caught in the act, every time."""
    import multiprocessing
    import pathlib
    graph = parse_graph(SLP)
    out = tmp_path / "race"
    barrier = multiprocessing.get_context("fork").Barrier(6, timeout=5)
    for name in ("write_text", "write_bytes"):
        real = getattr(pathlib.Path, name)

        def first_write_waits(self, *a, _real=real, **kw):
            if not getattr(first_write_waits, "done", False):
                first_write_waits.done = True
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()
            return _real(self, *a, **kw)
        monkeypatch.setattr(pathlib.Path, name, first_write_waits)
    pids = []
    for k in range(6):
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                graph.text = f"# process {k}\n" + graph.text
                runs.new_run(graph, out)
                code = 0
            except RunError:
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    codes = sorted(os.WEXITSTATUS(os.waitpid(p, 0)[1]) for p in pids)
    assert codes == [0, 1, 1, 1, 1, 1]
    assert (out / runs.GRAPH_COPY).read_text().startswith("# process ")
    assert runs.read_info(out)["status"] == "running"


def test_a_kill_when_resume_rewrites_the_loss_series_never_empties_them(one_epoch, monkeypatch):
    before = series_lines(one_epoch)
    assert before and all(before.values())
    # main's way: MonitorSeries emptied the file, then the kept lines were written back; a kill
    # in between (here: the first MonitorSeries given a file) lost the history.
    import nnabla.monitor as M
    real = M.MonitorSeries.__init__

    def killed_after_emptying(self, name, monitor=None, *a, **kw):
        real(self, name, monitor, *a, **kw)
        if monitor is not None and os.path.basename(self.sp).endswith("-loss.series.txt"):
            raise KeyboardInterrupt("killed")
    monkeypatch.setattr(M.MonitorSeries, "__init__", killed_after_emptying)
    with contextlib.suppress(KeyboardInterrupt):  # fixed: MonitorSeries is never given the file
        cli.main([str(a) for a in resume_argv(one_epoch)])
    now = series_lines(one_epoch)
    assert all(now[name].startswith(text) for name, text in before.items())


@pytest.mark.parametrize("step", ["resume-loaded", "resume-series", "write:Generator-loss.series.txt",
                                  "save-start", "save-params", "save-written", "save-renamed", "save-pointed",
                                  "save-cleaned", "write:run.json"])
def test_a_kill_at_each_step_of_a_resume_and_a_save_loses_nothing(one_epoch, step):
    before = series_lines(one_epoch)
    status = fork_cli(resume_argv(one_epoch), {"NNCGAN_FAIL_AT": step})
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"never reached {step}"
    epoch = json.loads((checkpoint.latest(one_epoch) / checkpoint.STATE).read_text())["epoch"]
    assert epoch in (1, 2) and (epoch == 2) == (step in ("save-pointed", "save-cleaned"))
    now = series_lines(one_epoch)
    for name, text in before.items():  # the history up to the saved epoch is all there
        assert now[name].startswith(text), step
    status = fork_cli(resume_argv(one_epoch, 3))  # and the run goes on
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert checkpoint.latest(one_epoch).name == "epoch_0003"
    assert not [n for n in os.listdir(one_epoch / "checkpoints") if n.startswith(".")]


def test_no_epoch_is_removed_while_a_reader_holds_it(one_epoch, capsys):
    with checkpoint.reading(one_epoch):  # infer/eval/report loading epoch 1
        rc, err = cli_err(capsys, resume_argv(one_epoch))
        assert rc == 0, err
        assert (one_epoch / "checkpoints" / "epoch_0001" / checkpoint.MANIFEST).is_file()
        checkpoint.verify(one_epoch / "checkpoints" / "epoch_0001")
    rc, err = cli_err(capsys, resume_argv(one_epoch, 3))  # the next save removes both old ones
    assert rc == 0, err
    assert sorted(os.listdir(one_epoch / "checkpoints")) == ["epoch_0003", "latest"]


# ------------------------------------------------------------------ 2. writes outside


def graph_named(tmp_path, name_line):
    text = SLP.read_text().replace("name: baseline_slp", name_line)
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return path


@SETTINGS
@given(st.text(min_size=1, max_size=30))
def test_a_graph_name_never_becomes_a_path(tmp_path_factory, name):
    """Whatever a graph's `name:` holds, `check` either refuses it naming the line, or the run
    folder it names is a single entry directly inside runs/."""
    tmp = tmp_path_factory.mktemp("n")
    path = graph_named(tmp, f"name: {json.dumps(name, ensure_ascii=False)}")
    line = 9  # of `name:` in baseline_slp.yaml
    try:
        graph = parse_graph(path)
    except GraphError as e:
        named = [p for p in e.problems if "graph's name" in p]
        assert named == ([] if safeio.name_problem(name) is None else named) and all(
            p.startswith(f"{path}:{line}:") for p in named), e.problems
        return
    assert safeio.name_problem(graph.name) is None
    root = tmp / "runs"
    run = runs.new_run(graph, runs_dir=root)
    assert run.parent == root and run.resolve().parent == root.resolve()
    assert os.listdir(tmp) == ["g.yaml", "runs"] or sorted(os.listdir(tmp)) == ["g.yaml", "runs"]


@pytest.mark.parametrize("name", ["../../evil", "/etc/x", "a/b", "..", "a\\b", "a\x00b", "bad\nname"])
def test_check_names_the_line_of_an_unsafe_graph_name(tmp_path, capsys, name):
    path = graph_named(tmp_path, f"name: {json.dumps(name)}")
    rc, err = cli_err(capsys, ["check", path])
    assert rc == 2 and f"{path}:9:" in err and "graph's name" in err, err


@pytest.mark.parametrize("where", ["pipeline", "stage"])
def test_a_pipeline_or_stage_name_never_becomes_a_path(tmp_path, capsys, where):
    text = (ROOT / "graphs" / "dcgan_srcnn.pipeline.yaml").read_text()
    if where == "pipeline":
        text = text.replace("pipeline: ", "pipeline: ../../x", 1)
    else:  # the last stage: its name goes into a picture's file name
        text = text.replace("- name: srcnn", "- name: ../../srcnn", 1)
    path = tmp_path / "p.pipeline.yaml"
    path.write_text(text.replace("graph: ", f"graph: {ROOT / 'graphs'}/"))
    rc, err = cli_err(capsys, ["check", path])
    assert rc == 2 and f"{path}:" in err and "path separator" in err, err


def make_target(kind, path, tmp):
    """Something at `path`: what a user (or an attacker) may have put where an output goes."""
    real = tmp / "real.bin"
    if kind == "absent":
        return
    if kind == "regular":
        path.write_bytes(b"old")
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    elif kind.startswith("link-to-"):
        make_target(kind[len("link-to-"):], real, tmp)
        os.symlink(real, path)
    elif kind == "dangling":
        os.symlink(tmp / "nowhere", path)


KINDS = ["absent", "regular", "folder", "fifo", "device", "link-to-regular", "link-to-folder", "link-to-fifo",
         "link-to-device", "dangling"]


def describe_node(path):
    try:
        st_ = os.lstat(path)
    except FileNotFoundError:
        return None
    kind = stat.S_IFMT(st_.st_mode)
    body = open(path, "rb").read() if stat.S_ISREG(st_.st_mode) else None
    return kind, body, st_.st_rdev, os.readlink(path) if stat.S_ISLNK(st_.st_mode) else None


@SETTINGS
@given(st.sampled_from(KINDS), st.binary(max_size=64), st.sampled_from(["out.png", "out", "o.html"]))
def test_outputs_replace_only_regular_files(tmp_path_factory, kind, data, name):
    tmp = tmp_path_factory.mktemp("o")
    path = tmp / name
    try:
        make_target(kind, path, tmp)
    except PermissionError:
        pytest.skip("mknod needs root")
    before = {p: describe_node(tmp / p) for p in os.listdir(tmp)}
    real_before = describe_node(tmp / "real.bin")
    try:
        safeio.write_bytes(path, data)
    except RunError as e:
        assert kind not in ("absent", "regular", "link-to-regular"), e
        assert str(path) in str(e)
        assert {p: describe_node(tmp / p) for p in os.listdir(tmp)} == before  # untouched, no temp left
        return
    assert kind in ("absent", "regular", "link-to-regular")
    assert open(path, "rb").read() == data
    assert sorted(os.listdir(tmp)) == sorted(set(before) | {name})  # no temporary file left
    if kind == "link-to-regular":
        assert os.path.islink(path) and real_before != describe_node(tmp / "real.bin")


def test_infer_out_on_a_device_node_leaves_it_alone(one_epoch, tmp_path, capsys):
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    rc, err = cli_err(capsys, ["infer", "--run", one_epoch, "--num", 4, "--out", dev])
    assert rc == 2 and "not a regular file" in err, err
    assert stat.S_ISCHR(os.lstat(dev).st_mode)
    rc, err = cli_err(capsys, ["report", one_epoch, "--out", tmp_path])  # a folder as --out
    assert rc == 2 and "is a folder" in err, err
    assert not [p for p in os.listdir(tmp_path.parent) if p.endswith(".tmp")]
    assert sorted(os.listdir(tmp_path)) == ["null", "r"]


# ------------------------------------------------------------------ 3. full and read-only disks


def test_a_real_full_disk_during_a_save(one_epoch, tmp_path, capsys):
    size = sum(f.stat().st_size for f in one_epoch.rglob("*") if f.is_file())
    with tmpfs(tmp_path / "disk", f"{size * 3 // 1024}k") as disk:
        run = disk / "r"
        shutil.copytree(one_epoch, run)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        with open(disk / "filler", "wb") as f:  # leave half an epoch free
            f.truncate(0)
            f.write(b"\0" * max(0, free - size // 2))
        rc, err = cli_err(capsys, resume_argv(run))
        assert rc == 2 and "cannot save epoch 2" in err and "No space left on device; epoch 1 is kept" in err, err
        assert sorted(os.listdir(run / "checkpoints")) == ["epoch_0001", "latest"]  # no half epoch left
        assert runs.read_info(run)["status"] == "failed"
        (disk / "filler").unlink()  # room again: the run resumes from epoch 1
        rc, err = cli_err(capsys, resume_argv(run))
        assert rc == 0 and checkpoint.latest(run).name == "epoch_0002", err
        assert runs.read_info(run)["status"] == "finished"


def test_h5pys_runtime_error_on_a_full_disk_is_one_clear_message(one_epoch, capsys, monkeypatch):
    real = nn.save_parameters

    def full(path, *a, **kw):
        real(path, *a, **kw)
        raise RuntimeError("Can't write data (file write failed: time = Wed, filename = 'x', file descriptor = 5,"
                           " errno = 28, error message = 'No space left on device')")
    monkeypatch.setattr(nn, "save_parameters", full)
    rc, err = cli_err(capsys, resume_argv(one_epoch))
    assert rc == 2 and "cannot save epoch 2" in err and "No space left on device; epoch 1 is kept" in err, err
    assert sorted(os.listdir(one_epoch / "checkpoints")) == ["epoch_0001", "latest"]
    assert runs.read_info(one_epoch)["status"] == "failed"
    monkeypatch.setattr(nn, "save_parameters", real)
    rc, err = cli_err(capsys, resume_argv(one_epoch))
    assert rc == 0 and checkpoint.latest(one_epoch).name == "epoch_0002", err


def test_a_full_log_file_disk_warns_once_and_training_goes_on(one_epoch, tmp_path, capsys, monkeypatch):
    log_path = tmp_path / "train.log"
    real_open = open

    def full_open(path, mode="r", *a, **kw):
        if str(path) == str(log_path) and "a" in mode and log_path.exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *a, **kw)
    import builtins
    monkeypatch.setattr(builtins, "open", full_open)
    rc, err = cli_err(capsys, resume_argv(one_epoch) + ["--log-file", log_path])
    assert rc == 0 and checkpoint.latest(one_epoch).name == "epoch_0002"


def test_a_read_only_run_folder(one_epoch, tmp_path, capsys):
    size = sum(f.stat().st_size for f in one_epoch.rglob("*") if f.is_file())
    with tmpfs(tmp_path / "ro", f"{size * 2 // 1024}k") as disk:
        run = disk / "r"
        shutil.copytree(one_epoch, run)
        remount_read_only(disk)
        rc, err = cli_err(capsys, ["infer", "--run", run, "--num", 4])
        assert rc == 2 and f"cannot write {run / 'infer'}" in err and "Read-only file system" in err, err
        rc, err = cli_err(capsys, ["infer", "--run", run, "--num", 4, "--out", tmp_path / "ok.png"])
        assert rc == 0 and (tmp_path / "ok.png").is_file(), err  # reading a read-only run is fine
        rc, err = cli_err(capsys, resume_argv(run))
        assert rc == 2 and f"cannot write" in err and "Read-only file system" in err, err
        rc, err = cli_err(capsys, ["report", run])
        assert rc == 2 and "Read-only file system" in err, err
        rc, err = cli_err(capsys, ["dataset", "export", "mnist", disk / "csv", "--limit", 3,
                                   "--split", "test"])
        assert rc == 2 and "Read-only file system" in err, err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    rc, err = cli_err(capsys, ["dataset", "export", "mnist", a_file, "--limit", 3, "--split", "test"])
    assert rc == 2 and "is a file, not a folder" in err, err


# ------------------------------------------------------------------ 4. dead ends


def test_a_dataset_smaller_than_a_batch_is_refused_before_any_folder(tmp_path, capsys, monkeypatch):
    use_small_mnist(monkeypatch)["n"] = 20
    out = tmp_path / "r"
    rc, err = cli_err(capsys, ["train", CGAN, "--out", out, "--batch-size", 32, "--quiet"])
    assert rc == 2 and "has 20 training sample(s), fewer than one batch of 32" in err, err
    assert not out.exists()


def test_check_refuses_a_batch_larger_than_a_csv_dataset(tmp_path, capsys):
    from PIL import Image
    (tmp_path / "img").mkdir()
    rows = ["x:image,y:label"]
    for i in range(3):
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,{i}")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    text = CGAN.read_text().replace("name: mnist", f"csv: {tmp_path / 'd.csv'}")
    graph = tmp_path / "g.yaml"
    graph.write_text(text)
    rc, err = cli_err(capsys, ["check", graph])
    assert rc == 2 and "has 3 training sample(s), fewer than one batch" in err, err
    rc, err = cli_err(capsys, ["check", ROOT / "graphs" / "baseline_slp.yaml", "--set", "config.batch_size=60001"])
    assert rc == 2 and "60000 training sample(s)" in err, err


def test_a_run_stopped_in_epoch_1_can_be_restarted(tmp_path, capsys, monkeypatch):
    use_small_mnist(monkeypatch)["n"] = 64
    out = tmp_path / "r"
    real = OptimizerStep.__call__

    def interrupted(self, *a, **kw):
        raise KeyboardInterrupt  # Ctrl-C in epoch 1 (the cli's handler)
    monkeypatch.setattr(OptimizerStep, "__call__", interrupted)
    argv = ["train", CGAN, "--out", out, "--epochs", 1, "--batch-size", 32, "--quiet", "--no-eval"]
    rc, err = cli_err(capsys, argv)
    assert rc != 0 and not checkpoint.has_checkpoint(out)
    monkeypatch.setattr(OptimizerStep, "__call__", real)
    (out / "my-notes.txt").write_text("kept")
    rc, err = cli_err(capsys, argv)
    assert rc == 2 and "is not empty and is not an nncgan run" in err  # a user's file: refused
    (out / "my-notes.txt").unlink()
    rc, err = cli_err(capsys, argv)
    assert rc == 2 and "--restart" in err, err
    rc, err = cli_err(capsys, ["train", CGAN, "--resume", "--out", out, "--quiet"])
    assert rc == 2 and f"nncgan train {CGAN} --out {out} --restart" in err, err
    (out / "monitor" / "mine.txt").write_text("kept")  # inside nncgan's folder: kept by --restart
    rc, err = cli_err(capsys, argv + ["--restart"])
    assert rc == 0 and checkpoint.latest(out).name == "epoch_0001", err
    assert (out / "monitor" / "mine.txt").read_text() == "kept"
    rc, err = cli_err(capsys, argv + ["--restart"])  # a complete epoch is never thrown away
    assert rc == 2 and "--resume" in err and checkpoint.latest(out).name == "epoch_0001", err


# ------------------------------------------------------------------ 5. wrong words


def test_divergence_at_the_end_of_an_epoch_names_the_epoch_really_kept(cgan_epoch, capsys, monkeypatch):
    one_epoch = cgan_epoch
    real = OptimizerStep.__call__

    def step(self, batch, rng, iteration):
        loss = real(self, batch, rng, iteration)
        if iteration == 3:  # the last iteration of epoch 2: caught by the end-of-epoch check
            nn.get_parameters(grad_only=False)["BatchNormalization/bn/mean"].d[...] = np.nan
        return loss
    monkeypatch.setattr(OptimizerStep, "__call__", step)
    rc, err = cli_err(capsys, resume_argv(one_epoch, 3))
    assert rc == 2 and "at the end of epoch 2" in err and "the last good epoch, 1, is kept" in err, err


def test_nan_from_batch_normalisation_of_one_sample_is_blamed_on_the_batch_size(tmp_path, capsys, monkeypatch):
    use_small_mnist(monkeypatch)["n"] = 4
    rc, err = cli_err(capsys, ["train", CGAN, "--out", tmp_path / "r", "--epochs", 1, "--batch-size", 1,
                               "--quiet", "--no-eval"])
    assert rc == 2 and "training diverged" in err and "no epoch was saved" in err, err
    assert "batch size is 1" in err and "BatchNormalization" in err and "learning rate" not in err.split(
        "batch size is 1")[0].split("diverged:")[1], err


def test_an_unreadable_old_tile_is_left_out_not_reported_as_unwritable(one_epoch, capsys):
    tile = one_epoch / "samples" / "epoch_0001.png"
    tile.write_bytes(tile.read_bytes()[:60])  # truncated
    rc, err = cli_err(capsys, resume_argv(one_epoch))
    assert rc == 0 and "cannot be written" not in err, err
    assert (one_epoch / "samples" / "epoch_0002.png").is_file() and (one_epoch / "samples" / "progress.gif").is_file()


# ------------------------------------------------------------------ 9. damaged files, FIFOs


def test_damaged_series_tile_and_png_never_break_resume_or_report(one_epoch, capsys):
    series = sorted((one_epoch / "monitor").glob("*-loss.series.txt"))[0]
    with open(series, "a") as f:
        f.write("7 0.5\n12")  # a half-written line, as a kill mid-write leaves it
    (one_epoch / "samples" / "epoch_0000.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    rc, err = cli_err(capsys, resume_argv(one_epoch))
    assert rc == 0, err
    assert all(len(l.split()) == 2 for l in series.read_text().splitlines())
    (one_epoch / "samples" / "epoch_0002.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # truncated
    (one_epoch / "infer").mkdir()
    (one_epoch / "infer" / "bad.png").write_bytes(b"not a png")
    rc, err = cli_err(capsys, ["report", one_epoch])
    assert rc == 0, err
    html = (one_epoch / "report.html").read_text()
    assert "epoch_0002.png cannot be read" in html and "bad.png cannot be read" in html
    assert 'data-epoch="1"' in html


@pytest.mark.parametrize("info", [{"started": 5, "status": ["x"], "max_epoch": "ten", "batch_size": "32",
                                   "pid": "me", "name": 7},
                                  {"batch_size": -3, "epochs": 1.5, "graph": "/nowhere/g.yaml"}])
def test_run_json_with_wrong_types_never_breaks_runs_resume_or_report(one_epoch, tmp_path, capsys, info):
    root = tmp_path / "runs"
    root.mkdir()
    good = shutil.copytree(one_epoch, root / "good")
    bad = shutil.copytree(one_epoch, root / "bad")
    unreadable = shutil.copytree(one_epoch, root / "unreadable")
    data = json.loads((bad / runs.RUN_INFO).read_text())
    data.update(info)
    (bad / runs.RUN_INFO).write_text(json.dumps(data))
    (unreadable / runs.RUN_INFO).write_text('{"graph": ')
    rc = cli.main(["runs", "--runs-dir", str(root)])
    captured = capsys.readouterr()
    assert rc == 0 and "Traceback" not in captured.err
    out = captured.out.splitlines()
    lines = {l.split()[0]: l for l in out[1:]}
    assert set(lines) == {"good", "bad", "unreadable"}
    assert "damaged" in lines["bad"] and "damaged" in lines["unreadable"] and "damaged" not in lines["good"]
    rc, err = cli_err(capsys, ["report", bad])
    assert rc == 0 and "is damaged" in (bad / "report.html").read_text(), err
    rc, err = cli_err(capsys, resume_argv(bad))
    assert rc == 0 and checkpoint.latest(bad).name == "epoch_0002", err


def no_hang(fn, seconds=60):
    """Run fn in a thread; fail (never hang the suite) if it has not returned in `seconds`."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 -- reported below
            result["error"] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked (a FIFO opened for reading?)"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def test_a_fifo_as_the_graph_never_blocks(tmp_path, capsys):
    fifo = tmp_path / "g.yaml"
    os.mkfifo(fifo)
    rc = no_hang(lambda: cli.main(["check", str(fifo)]), 30)
    err = capsys.readouterr().err
    assert rc == 2 and str(fifo) in err and "not a regular file" in err, err


@pytest.mark.parametrize("planted", ["run.json", "graph.yaml", "monitor/Generator-loss.series.txt",
                                     "samples/epoch_0000.png", "checkpoints/latest", "eval/eval.json",
                                     "checkpoints/epoch_0001/state.json"])
def test_a_fifo_planted_in_a_run_never_blocks(one_epoch, capsys, planted):
    path = one_epoch / planted
    path.parent.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    for argv in (["runs", "--runs-dir", one_epoch.parent], ["report", one_epoch],
                 ["infer", "--run", one_epoch, "--num", 4, "--out", one_epoch / "x.png"]):
        rc = no_hang(lambda: cli.main([str(a) for a in argv]), 60)
        err = capsys.readouterr().err
        assert rc in (0, 2) and "Traceback" not in err, (argv, err)
