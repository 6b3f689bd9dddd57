"""config.save_every (a partial epoch saved, resumed bit for bit) and config.keep (which epochs stay)."""
import json

import h5py
import numpy as np
import pytest

from nncgan import cli, safeio
from nncgan.errors import GraphError
from nncgan.graph import overrides
from nncgan.train import checkpoint, keep, loop, progress
from nncgan.train.progress import eval_series_path as series_path

GRAPH = """
dataset: {{name: mnist}}
config: {{batch_size: 4, max_epoch: 2, ema: 0.5{extra}}}
networks:
  N:
    layers:
      - {{name: z, type: Input, size: [4], generator: Normal}}
      - {{name: A, type: Affine, out_shape: [1, 28, 28]}}
      - {{name: S, type: Sigmoid}}
      - {{name: L, type: SquaredError, target: {{dataset: x}}}}
optimizers:
  N: {{network: N, solver: Adam}}
executors:
  E: {{network: N, output: S}}
"""


def _graph(tmp_path, extra=""):
    g = tmp_path / f"g{abs(hash(extra))}.yaml"
    g.write_text(GRAPH.format(extra=extra))
    return str(g)


def _h5(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def _saved(run):
    """Every array of the last complete epoch: parameters, solver states, EMA; and the loss series."""
    folder = checkpoint.latest(run)
    files = sorted(p.name for p in folder.iterdir() if p.suffix == ".h5")
    state = json.loads((folder / checkpoint.STATE).read_text())
    return folder.name, {f: _h5(folder / f) for f in files}, state["losses"], \
        progress.series_file(run, "N").read_text()


def _interrupt_at(monkeypatch, n):
    """Ctrl-C right after the n-th partial save (safeio's fault hook at 'partial-saved')."""
    calls = []

    def fault(step):
        if step == "partial-saved":
            calls.append(step)
            if len(calls) == n:
                raise loop.Interrupted()
    monkeypatch.setattr(safeio, "fault", fault)
    return calls


# saves every 5 iterations of 32 (6 in epoch 1): the 8th is at iteration 10 of epoch 2, between two points of the
# loss series (every 3 iterations); the 2nd inside epoch 1, before any complete epoch
@pytest.mark.parametrize("stop_at, epoch, done", [(8, 2, 10), (2, 1, 10)])
def test_a_partial_save_resumes_bit_for_bit(tmp_path, small_mnist, monkeypatch, capsys, stop_at, epoch, done):
    g = _graph(tmp_path, ", save_every: {iterations: 5}")
    assert cli.main(["train", g, "--out", str(tmp_path / "a"), "--quiet", "--no-eval", "--procs", "1"]) == 0
    unbroken = _saved(tmp_path / "a")

    calls = _interrupt_at(monkeypatch, stop_at)
    b = tmp_path / "b"
    assert cli.main(["train", g, "--out", str(b), "--quiet", "--no-eval", "--procs", "1"]) == 130
    assert f"its first {done} iterations are saved" in capsys.readouterr().err
    part = checkpoint.peek_partial(b)
    assert (part["epoch"], part["partial"]["done"]) == (epoch - 1, done)
    # infer's epoch is still the last complete one, never the partial save
    assert checkpoint.complete_epoch(b) == (f"epoch_{epoch - 1:04d}" if epoch > 1 else None)

    monkeypatch.setattr(safeio, "fault", lambda step: None)
    assert cli.main(["train", g, "--resume", "--out", str(b), "--quiet", "--no-eval", "--procs", "1"]) == 0
    assert f"at iteration {done} of epoch {epoch}" in capsys.readouterr().out
    resumed = _saved(b)
    assert resumed[0] == unbroken[0] == "epoch_0002"
    assert resumed[1].keys() == unbroken[1].keys() and "ema.h5" in resumed[1] and len(resumed[1]) >= 3
    for f, arrays in unbroken[1].items():
        assert arrays.keys() == resumed[1][f].keys(), f
        for k, a in arrays.items():
            assert np.array_equal(a, resumed[1][f][k]), f"{f}: {k} differs from the unbroken run"
    assert resumed[2] == unbroken[2]       # each epoch's mean losses, exactly
    assert resumed[3] == unbroken[3]       # the loss series, line for line
    assert not checkpoint.partial_folder(b).exists()   # the completed epoch replaced it
    assert len(calls) == stop_at


def test_keep_every_n_keeps_those_epochs_and_the_last(tmp_path, small_mnist):
    small_mnist["n"] = 16
    g = _graph(tmp_path, ", keep: {every: 2}")
    assert cli.main(["train", g, "--out", str(tmp_path / "r"), "--quiet", "--no-eval", "--procs", "1",
                     "--epochs", "5"]) == 0
    names = sorted(p.name for p in (tmp_path / "r" / "checkpoints").glob("epoch_*"))
    assert names == ["epoch_0002", "epoch_0004", "epoch_0005"]
    assert checkpoint.complete_epoch(tmp_path / "r") == "epoch_0005"


def test_keep_last_is_the_default(tmp_path, small_mnist):
    small_mnist["n"] = 16
    assert cli.main(["train", _graph(tmp_path), "--out", str(tmp_path / "r"), "--quiet", "--no-eval",
                     "--procs", "1", "--epochs", "3"]) == 0
    assert [p.name for p in (tmp_path / "r" / "checkpoints").glob("epoch_*")] == ["epoch_0003"]


@pytest.mark.parametrize("score, lines, best", [
    ("fid", {1: 3.0, 2: 1.0, 3: 2.0, 4: 5.0}, {2, 3}),              # lower is better
    ("label_accuracy", {1: 0.3, 2: 0.9, 3: 0.1, 4: 0.8}, {2, 4}),    # higher is better
])
def test_keep_best_k_by_a_score(tmp_path, score, lines, best):
    series_path(tmp_path, score).parent.mkdir(parents=True)
    series_path(tmp_path, score).write_text("".join(f"{e} {v}\n" for e, v in lines.items()))
    spec, problems = keep.parse_keep({"best": {"k": 2, "score": score}})
    assert not problems
    assert keep.kept(tmp_path, spec, [1, 2, 3, 4, 5]) == best | {5}   # epoch 5: the last, not yet scored
    assert keep.kept(tmp_path, {**spec, "every": 3}, [1, 2, 3, 4, 5]) == best | {3, 5}


def test_keep_best_through_save_removes_the_others(tmp_path):
    import nnabla as nn
    nn.parameter.get_parameter_or_create("w", (2,), np.zeros(2, np.float32))
    series_path(tmp_path, "fid").parent.mkdir(parents=True)
    series_path(tmp_path, "fid").write_text("1 3.0\n2 1.0\n3 2.0\n")
    spec = {"best": {"k": 1, "score": "fid"}}
    for e in (1, 2, 3, 4):
        checkpoint.save(tmp_path, e, {}, {"epoch": e}, keep=lambda epochs: keep.kept(tmp_path, spec, epochs))
    (tmp_path / "checkpoints" / "epoch_0009").mkdir()   # not nncgan's (no manifest): never removed
    checkpoint.save(tmp_path, 5, {}, {"epoch": 5}, keep=lambda epochs: keep.kept(tmp_path, spec, epochs))
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch_*"))
    assert names == ["epoch_0002", "epoch_0005", "epoch_0009"]


@pytest.mark.parametrize("setting, message", [
    ("config.keep=all", "config.keep must be last, {every: N}"),
    ("config.keep={every: 0}", "config.keep.every must be an integer >= 1"),
    ("config.keep={best: {k: 2, score: loss}}", "config.keep.best must be {k: K (>= 1), score: one of fid"),
    ("config.save_every={iterations: 0}", "config.save_every.iterations must be an integer >= 1"),
    ("config.save_every={minutes: -1}", "config.save_every.minutes must be a number of minutes above 0"),
    ("config.save_every={iteration: 5}", "config.save_every must be null (off), {iterations: N}"),
])
def test_bad_policy_is_one_error_with_file_and_line(tmp_path, setting, message):
    with pytest.raises(GraphError) as e:
        overrides.load(_graph(tmp_path), [setting])
    assert len(e.value.problems) == 1
    assert message in str(e.value) and ".yaml:3:" in str(e.value)


def test_render_writes_the_policy_back(tmp_path):
    from nncgan.graph.render import resolved
    g, _ = overrides.load(_graph(tmp_path), ["config.keep={every: 3}", "config.save_every={minutes: 2.5}"])
    cfg = resolved(g)["config"]
    assert cfg["keep"] == {"every": 3} and cfg["save_every"] == {"minutes": 2.5}
    assert resolved(overrides.load(_graph(tmp_path))[0])["config"]["keep"] == "last"


def test_a_run_with_only_a_partial_save_is_resumed_not_started_over(tmp_path, small_mnist, monkeypatch, capsys):
    g = _graph(tmp_path, ", save_every: {iterations: 5}")
    _interrupt_at(monkeypatch, 1)
    r = str(tmp_path / "r")
    assert cli.main(["train", g, "--out", r, "--quiet", "--no-eval", "--procs", "1"]) == 130
    monkeypatch.setattr(safeio, "fault", lambda step: None)
    capsys.readouterr()
    assert cli.main(["train", g, "--out", r, "--quiet", "--no-eval", "--procs", "1"]) != 0
    assert "a partial epoch saved; continue it with --resume" in capsys.readouterr().err
    # --restart protects it as it protects a complete epoch
    assert cli.main(["train", g, "--out", r, "--restart", "--quiet", "--no-eval", "--procs", "1"]) != 0
    assert "a partial epoch saved; continue it with --resume" in capsys.readouterr().err
    assert checkpoint.peek_partial(r)["partial"]["done"] == 5


def test_save_every_option_is_recorded_and_kept_on_resume(tmp_path, small_mnist, monkeypatch, capsys):
    g = _graph(tmp_path)
    r = tmp_path / "r"
    assert cli.main(["train", g, "--out", str(r), "--quiet", "--no-eval", "--procs", "1", "--save-every", "x"]) == 2
    assert "--save-every takes N iterations (e.g. 500) or M minutes (e.g. 5m), got 'x'" in capsys.readouterr().err
    _interrupt_at(monkeypatch, 3)
    assert cli.main(["train", g, "--out", str(r), "--quiet", "--no-eval", "--procs", "1", "--save-every", "4"]) == 130
    assert checkpoint.peek_partial(r)["partial"]["done"] == 12
    assert json.loads((r / "run.json").read_text())["save_every"] == "4"
    calls = _interrupt_at(monkeypatch, 2)   # resumed: still every 4 iterations (16, 20)
    assert cli.main(["train", g, "--resume", "--out", str(r), "--quiet", "--no-eval", "--procs", "1"]) == 130
    assert "--save-every 4" in capsys.readouterr().out and len(calls) == 2
    assert checkpoint.peek_partial(r)["partial"]["done"] == 20
    assert keep.option("2.5m") == {"minutes": 2.5} and keep.option("500") == {"iterations": 500}


def test_a_damaged_partial_save_is_not_used(tmp_path, small_mnist, monkeypatch, capsys):
    g = _graph(tmp_path, ", save_every: {iterations: 5}")
    r = tmp_path / "r"
    _interrupt_at(monkeypatch, 8)   # iteration 10 of epoch 2
    assert cli.main(["train", g, "--out", str(r), "--quiet", "--no-eval", "--procs", "1"]) == 130
    params = checkpoint.partial_folder(r) / checkpoint.PARAMS
    params.write_bytes(params.read_bytes()[:-8] + b"damaged!")
    monkeypatch.setattr(safeio, "fault", lambda step: None)
    capsys.readouterr()
    assert cli.main(["train", g, "--resume", "--out", str(r), "--quiet", "--no-eval", "--procs", "1"]) == 0
    out = capsys.readouterr().out
    assert "partial is damaged or older than the last complete epoch; not used" in out
    assert "resuming" in out and "after epoch 1\n" in out and checkpoint.complete_epoch(r) == "epoch_0002"
