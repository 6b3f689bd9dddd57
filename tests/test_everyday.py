"""Everyday use (issue 14), each check run through the CLI as a user types it."""
import json
import platform
import re
import shlex

import nnabla as nn
import pytest

import nncgan
from nncgan import cli, run as runs
from nncgan.train import loop, outputs, step

from conftest import MNIST_DIR, ROOT


def train(runs_dir, graph, *extra):
    return cli.main(["train", str(ROOT / "graphs" / graph), "--epochs", "1", "--batch-size", "32",
                     "--runs-dir", str(runs_dir), "--quiet", "--no-eval", *extra])


def test_commands_without_a_run_take_the_latest_gan_not_the_classifier_and_say_so(small_mnist, tmp_path,
                                                                                    capsys):
    small_mnist["n"] = 64
    assert train(tmp_path, "cgan_mnist.yaml") == 0
    assert train(tmp_path, "classifier_mnist.yaml") == 0  # trained after the GAN, as the README asks
    gan = next(d for d in tmp_path.iterdir() if d.name.endswith("cgan_mnist"))
    capsys.readouterr()
    assert cli.main(["infer", "--label", "7", "--num", "10", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"drawing from {gan}, the latest GAN run" in out and (gan / "infer" / "label_7_seed0.png").is_file()
    assert "cuDNN" not in out  # the CUDA notice only when cudnn is asked for by name
    plain = (gan / "infer" / "label_7_seed0.png").read_bytes()
    assert cli.main(["infer", "--label", "7", "--num", "10", "--truncation", "0.5", "--run", str(gan)]) == 0
    assert (gan / "infer" / "label_7_seed0_trunc0.5.png").is_file()
    assert (gan / "infer" / "label_7_seed0.png").read_bytes() == plain  # not overwritten
    capsys.readouterr()
    assert cli.main(["report", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"reporting {gan}, the latest GAN run" in out and (gan / "report.html").is_file()
    assert cli.main(["export", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"exporting {gan}, the latest GAN run" in out and (gan / "export" / f"{gan.name}.nnp").is_file()


def quick(out, *extra):
    """A quick run as the docs type it: real MNIST files, the first 64 samples, batches of 32."""
    return ["train", str(ROOT / "graphs" / "cgan_mnist.yaml"), "--data-dir", str(MNIST_DIR), "--limit-samples",
            "64", "--batch-size", "32", "--out", str(out), "--quiet", "--no-eval", *extra]


def interrupt_at(monkeypatch, module, where, epoch):
    """Ctrl-C (as the loop sees it) once, in `module.where` of the given epoch."""
    real = getattr(module, where)
    calls = {"n": 0}

    def wrapped(*a, **k):
        calls["n"] += 1
        if calls["n"] == epoch:
            raise loop.Interrupted()
        return real(*a, **k)
    monkeypatch.setattr(module, where, wrapped)


def printed_command(text, after, prog="bin/nncgan"):
    line = text.split(after, 1)[1].strip().splitlines()[0]
    args = shlex.split(line)
    assert args[0] == prog, line  # the way the user invoked nncgan
    return args[1:]


def test_resume_keeps_the_runs_epochs_data_dir_log_file_and_limits(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNCGAN_PROG", "bin/nncgan")
    run, log = tmp_path / "run", tmp_path / "train.log"
    interrupt_at(monkeypatch, outputs, "epoch_images", 1)  # Ctrl-C right after epoch 1 is saved
    assert cli.main(quick(run, "--epochs", "2", "--log-file", str(log))) == 130  # Ctrl-C: 130
    monkeypatch.undo()
    err = capsys.readouterr().err
    resume = printed_command(err, "Resume with:")
    assert resume == ["train", str(ROOT / "graphs" / "cgan_mnist.yaml"), "--resume", "--out", str(run)]
    assert cli.main(resume) == 0
    out = capsys.readouterr().out
    assert "resuming with the run's own settings: --epochs 2, --data-dir" in out
    assert "--limit-samples 64: training on the first 64 of 60000 samples" in out
    info = runs.read_info(run)
    assert info["max_epoch"] == 2 and info["status"] == "finished" and info["limit_samples"] == 64
    assert info["data_dir"] == str(MNIST_DIR) and info["log_file"] == str(log)
    lines = log.read_text().splitlines()
    assert "epoch 2:" in log.read_text()  # the resumed run logs where the run logged
    assert any(l.endswith("nncgan: run ended: interrupted: " + err.split("error: ", 1)[1].strip())
               for l in lines), lines
    assert lines[-1].endswith("nncgan: run ended: finished")


def test_interrupted_in_epoch_1_the_start_again_command_works_as_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNCGAN_PROG", "bin/nncgan")
    run, log = tmp_path / "run", tmp_path / "train.log"
    interrupt_at(monkeypatch, step, "train_epoch", 1)
    assert cli.main(quick(run, "--epochs", "1", "--log-file", str(log))) == 130
    monkeypatch.undo()
    again = printed_command(capsys.readouterr().err, "start it again with:")
    # --data-dir, --log-file, --out kept; --restart, since the folder holds the run that has no epoch
    assert again == quick(run, "--epochs", "1", "--log-file", str(log)) + ["--restart"]
    assert cli.main(again) == 0 and runs.read_info(run)["status"] == "finished"


def test_resume_asking_for_fewer_epochs_says_so(tmp_path, capsys):
    run = tmp_path / "runs" / "r"
    assert cli.main(quick(run, "--epochs", "2", "--limit-iterations", "1")) == 0
    assert runs.read_info(run)["limit_iterations"] == 1
    capsys.readouterr()
    assert cli.main(["train", str(ROOT / "graphs" / "cgan_mnist.yaml"), "--resume", "--out", str(run),
                     "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "has already trained 2 epochs; --epochs 1 asks for fewer" in out
    assert "2 of 1" not in out
    assert cli.main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert " 2/2 " in row and " finished " in row, row


def test_version_graphs_and_a_sample_by_name_from_another_folder(tmp_path, monkeypatch, capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"nncgan {nncgan.__version__}")
    assert cli.main(["graphs"]) == 0
    listed = capsys.readouterr().out
    assert "cgan_mnist " in listed and "Conditional DCGAN on MNIST" in listed and "dcgan_srcnn.pipeline" in listed
    monkeypatch.chdir(tmp_path)  # no graphs/ here: the sample is found by name
    assert cli.main(["train", "cgan_mnist", "--data-dir", str(MNIST_DIR), "--limit-samples", "64", "--epochs", "1",
                     "--batch-size", "32", "--out", "r", "--quiet", "--no-eval"]) == 0
    info = runs.read_info(tmp_path / "r")
    assert info["graph"] == str(ROOT / "nncgan" / "graphs" / "cgan_mnist.yaml")
    assert info["nncgan_version"] == nncgan.__version__ and info["nnabla"] == nn.__version__
    assert info["python"] == platform.python_version() and info["context"].startswith("cpu")
    assert info["commands"] == [["train", "cgan_mnist", "--data-dir", str(MNIST_DIR), "--limit-samples", "64",
                                 "--epochs", "1", "--batch-size", "32", "--out", "r", "--quiet", "--no-eval"]]
    assert info["limit_samples"] == 64 and info["limit_iterations"] is None and "command" not in info
    if (ROOT / ".git").exists():
        assert len(info["commit"].split("-")[0]) == 40


def test_the_package_carries_the_sample_graphs(tmp_path):
    """What `pip install .` puts in site-packages (setuptools' build_py, as the wheel gets it)."""
    import shutil
    import subprocess
    import sys
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "tests",
                                                                            "*.egg-info", "build"))
    r = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                        "--build-lib", str(tmp_path / "lib")], cwd=src, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    shipped = {p.name for p in (tmp_path / "lib" / "nncgan" / "graphs").iterdir()}
    assert {p.name for p in (ROOT / "nncgan" / "graphs").glob("*.yaml")} <= shipped
    assert {"cgan_mnist.yaml", "classifier_mnist.yaml", "dcgan_srcnn.pipeline.yaml"} <= shipped


@pytest.mark.parametrize("old, new, cause", [
    ("{name: Affine, type: Affine, out_shape: 512,", "{name: Affine, type: Affine, out_shpe: 512,",
     "unknown key 'out_shpe' in an Affine layer; did you mean 'out_shape'?"),
    ("{name: Affine, type: Affine, out_shape: 512,", "{name: Affine, type: Afine, out_shape: 512,",
     "unknown layer type 'Afine'; did you mean 'Affine'?"),
])
def test_one_misspelling_one_message(tmp_path, capsys, old, new, cause):
    text = (ROOT / "graphs" / "cgan_mnist.yaml").read_text()
    assert text.count(old) == 1
    path = tmp_path / "typo.yaml"
    path.write_text(text.replace(old, new))
    assert cli.main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nncgan: 1 problem(s) in the graph:"), err
    assert cause in err and "'Generator' (line" in err and "'RuntimeGenerator' (line" in err
    for leak in ("NoneType", "not iterable", "needs the setting", "Known types", "a Affine"):
        assert leak not in err, err


def test_progress_line_fits_80_columns_with_running_means_and_epoch_times(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    run, log = tmp_path / "runs" / "r", tmp_path / "train.log"
    args = [a for a in quick(run, "--epochs", "1", "--log-file", str(log)) if a != "--quiet"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    bars = [l for l in captured.err.replace("\r", "\n").splitlines() if l.startswith("epoch 1/1")]
    assert bars and all(len(l) <= 80 for l in bars), "\n".join(bars)
    state = json.loads((run / "checkpoints" / "epoch_0001" / "state.json").read_text())
    means = state["losses"]["1"]
    # the last refresh shows the epoch's running means (= its mean loss), every optimizer, and img/s
    assert all(f"{short} {means[name]:.3f}" in bars[-1] for short, name in
               (("G", "Generator"), ("DF", "DiscriminatorFake"), ("DR", "DiscriminatorReal"))), bars[-1]
    assert "img/s" in bars[-1]
    seconds = runs.read_info(run)["epoch_seconds"]["1"]
    assert seconds > 0 and re.search(r"epoch 1: .*\d in \d+\.\ds  \(saved", captured.out)
    assert cli.main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "TIME" in table[0] and re.search(r" \d+\.\ds ", table[1])
    assert cli.main(["report", str(run)]) == 0
    assert 'class="num duration"' in (run / "report.html").read_text()
    assert log.read_text().splitlines()[-1].endswith("nncgan: run ended: finished")


def test_check_and_view_count_parameters_as_nnabla_builds_them(tmp_path, capsys):
    from nncgan.builder import build_all
    from nncgan.graph.parse import parse_graph
    assert cli.main(["check", "cgan_mnist"]) == 0
    out = capsys.readouterr().out
    graph_row = re.search(r"^  graph +([\d,]+) +([\d,]+) +([\d,]+)", out, re.M)
    total = int(graph_row.group(1).replace(",", ""))
    nn.clear_parameters()
    build_all(parse_graph(ROOT / "graphs" / "cgan_mnist.yaml"), 2, 0)
    built = nn.get_parameters(grad_only=False)
    assert total == sum(v.size for v in built.values())  # each shared scope once
    bn_stats = sum(v.size for k, v in built.items() if k.endswith(("/mean", "/var")))
    assert int(graph_row.group(3).replace(",", "")) == bn_stats  # running statistics: never trained
    affine = re.search(r"^  Affine +Affine +\(512,\) +([\d,]+) <- Concatenate", out, re.M)
    assert affine.group(1) == f"{110 * 512:,}"  # (100 noise + 10 label) x 512, no bias
    g = re.search(r"^  Generator +([\d,]+) +([\d,]+) +([\d,]+)", out, re.M)
    assert int(g.group(1).replace(",", "")) == total  # Generator's network holds D too (frozen there)
    assert cli.main(["view", "cgan_mnist", "--out", str(tmp_path / "v.html")]) == 0
    html = (tmp_path / "v.html").read_text()
    assert f'<tr data-network="Generator"><td>Generator</td><td>{total:,}</td>' in html


def read_events(folder):
    """Every event in a run's TensorBoard files: TFRecord framing (length, CRCs) of tensorboardX's Event."""
    import struct
    from tensorboardX.proto.event_pb2 import Event
    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            pos += 12
            events.append(Event.FromString(data[pos:pos + length]))
            pos += length + 4
    return events


def test_tensorboard_events_hold_every_loss_score_tile_and_the_graph(tmp_path, capsys):
    root = tmp_path / "runs"
    clf = root / "clf"
    assert cli.main(["train", "classifier_mnist", "--data-dir", str(MNIST_DIR), "--limit-samples", "64",
                     "--batch-size", "32", "--epochs", "1", "--out", str(clf), "--quiet"]) == 0
    gan = root / "gan"
    assert cli.main([a for a in quick(gan, "--epochs", "1") if a != "--no-eval"]) == 0
    assert "scoring each epoch's samples with the classifier" in capsys.readouterr().out
    # pictures and numbers of epoch 1, then a second epoch: the report must tell them apart
    assert cli.main(["infer", "--run", str(gan), "--num", "10", "--label", "3"]) == 0
    assert cli.main(["eval", str(gan), "--num", "10", "--data-dir", str(MNIST_DIR), "--runs-dir", str(root)]) == 0
    assert cli.main(["train", "cgan_mnist", "--resume", "--out", str(gan), "--epochs", "2", "--quiet"]) == 0
    scalars, images, texts = {}, {}, {}
    for ev in read_events(gan / "tensorboard"):
        for v in ev.summary.value:
            if v.HasField("simple_value"):
                scalars.setdefault(v.tag, {})[ev.step] = v.simple_value
            elif v.HasField("image"):
                images.setdefault(v.tag, {})[ev.step] = v.image
            else:
                texts[v.tag] = v
    terms = {"Generator", "DiscriminatorFake", "DiscriminatorReal"}
    assert all(len(scalars[f"loss/{t}"]) == 4 for t in terms)  # 2 epochs of 2 iterations
    state = json.loads((gan / "checkpoints" / "epoch_0002" / "state.json").read_text())
    for t in terms:
        for e in ("1", "2"):
            assert scalars[f"epoch/{t}"][int(e)] == pytest.approx(state["losses"][e][t], rel=1e-5)
    assert set(scalars["epoch/seconds"]) == {1, 2}
    for score in ("label_accuracy", "fid", "class_entropy_ratio", "precision", "recall"):
        assert set(scalars[f"score/{score}"]) == {1, 2}, score
    fid_series = (gan / "monitor" / "eval-fid.series.txt").read_text().split()
    assert scalars["score/fid"][2] == pytest.approx(float(fid_series[-1]), rel=1e-4)
    from PIL import Image
    import io
    tile = Image.open(io.BytesIO(images["samples"][2].encoded_image_string))
    assert set(images["samples"]) == {1, 2} and tile.size == Image.open(gan / "samples" / "epoch_0002.png").size
    assert any(k.startswith("graph") for k in texts)
    clf_scalars = {v.tag for ev in read_events(clf / "tensorboard") for v in ev.summary.value}
    assert "score/test_accuracy" in clf_scalars

    assert cli.main(["report", str(gan)]) == 0
    html = (gan / "report.html").read_text()
    assert "<h2>Scores of every epoch</h2>" in html
    for score in ("fid", "label_accuracy", "precision"):
        assert f'id="score-{score}"' in html, score
    import browser  # the curves are there once the page is loaded in a browser, its console clean
    dom, console = browser.load(gan / "report.html", tmp_path)
    for score in ("fid", "label_accuracy", "precision"):
        assert f'id="score-{score}"' in dom, score
    assert console == []
    assert html.count("older than the run&#x27;s last epoch, 2") == 2  # the infer tile and eval.json
    assert "Frechet distance (classifier features)" in html.split("<h2>Evaluation</h2>")[1]  # eval's own table


def test_view_writes_beside_the_graph_not_here(tmp_path, monkeypatch, capsys):
    (tmp_path / "g").mkdir()
    graph = tmp_path / "g" / "mine.yaml"
    graph.write_text((ROOT / "graphs" / "cgan_mnist.yaml").read_text())
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert cli.main(["view", str(graph)]) == 0
    assert (tmp_path / "g" / "mine.html").is_file() and not list((tmp_path / "here").iterdir())


def test_the_old_environment_variable_is_an_announced_recorded_alias(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NNCGAN_LIMIT_SAMPLES", "96")
    args = [a for a in quick(tmp_path / "r", "--epochs", "1", "--limit-iterations", "1")]
    i = args.index("--limit-samples")
    del args[i:i + 2]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "NNCGAN_LIMIT_SAMPLES=96 is read as --limit-samples 96" in out
    assert "--limit-iterations 1: 1 of 3 iterations per epoch" in out
    info = runs.read_info(tmp_path / "r")
    assert info["limit_samples"] == 96 and info["limit_iterations"] == 1
    assert json.loads((tmp_path / "r" / "checkpoints" / "epoch_0001" / "state.json").read_text())["iteration"] == 1


def test_conditional_tiles_caption_each_row_with_its_label_and_strips_scale(small_mnist, tmp_path, capsys):
    import numpy as np
    from PIL import Image
    small_mnist["n"] = 64
    assert train(tmp_path, "cgan_mnist.yaml") == 0
    gan = next(d for d in tmp_path.iterdir() if d.name.endswith("cgan_mnist"))
    cell = 28 + 2
    epoch = Image.open(gan / "samples" / "epoch_0001.png")
    margin = int(epoch.text["caption_margin"])
    assert margin > 0 and epoch.size == (margin + 10 * cell - 2, 10 * cell - 2)  # the grid shifted right
    strip = np.asarray(epoch)[:, :margin]
    rows = [strip[r * cell:r * cell + 28] for r in range(10)]
    assert all(r.max() > 128 for r in rows)  # each row has its caption drawn (white on black)
    assert len({r.tobytes() for r in rows}) == 10  # "0".."9": ten different captions

    # infer without --label: one row per label, captioned the same way; the cells are those of --no-captions
    assert cli.main(["infer", "--run", str(gan), "--out", str(tmp_path / "c.png")]) == 0
    assert cli.main(["infer", "--run", str(gan), "--no-captions", "--out", str(tmp_path / "g.png")]) == 0
    c, g = Image.open(tmp_path / "c.png"), Image.open(tmp_path / "g.png")
    assert "caption_margin" not in g.text and g.size == (10 * cell - 2, 10 * cell - 2)
    m = int(c.text["caption_margin"])
    assert np.array_equal(np.asarray(c)[:, m:], np.asarray(g))  # cell pixels unchanged
    assert np.array_equal(np.asarray(c)[:, :m], strip[:, :m]) and m == margin  # same captions as the epoch tile
    assert cli.main(["infer", "--run", str(gan), "--label", "3", "--out", str(tmp_path / "l.png")]) == 0
    assert "caption_margin" not in Image.open(tmp_path / "l.png").text  # one label: the name says it

    # --interpolate / --arithmetic: nearest up-scaling, 2x by default for 28 px cells
    base = ["infer", "--run", str(gan), "--label", "7"]
    assert cli.main(base + ["--interpolate", "1", "2", "--scale", "1", "--out", str(tmp_path / "i1.png")]) == 0
    assert cli.main(base + ["--interpolate", "1", "2", "--out", str(tmp_path / "i.png")]) == 0
    assert cli.main(base + ["--interpolate", "1", "2", "--scale", "3", "--out", str(tmp_path / "i3.png")]) == 0
    one = np.asarray(Image.open(tmp_path / "i1.png"))
    assert one.shape == (28, 10 * cell - 2)
    for name, k in (("i.png", 2), ("i3.png", 3)):
        img = Image.open(tmp_path / name)
        assert img.text["scale"] == str(k)
        assert np.array_equal(np.asarray(img), one.repeat(k, 0).repeat(k, 1)), name
    assert cli.main(["infer", "--run", str(gan), "--arithmetic", "1", "2", "3", "--labels", "1,1,8",
                     "--scale", "1", "--out", str(tmp_path / "a1.png")]) == 0
    assert cli.main(["infer", "--run", str(gan), "--arithmetic", "1", "2", "3", "--labels", "1,1,8",
                     "--out", str(tmp_path / "a.png")]) == 0
    a1 = np.asarray(Image.open(tmp_path / "a1.png"))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), a1.repeat(2, 0).repeat(2, 1))
    capsys.readouterr()
    assert cli.main(base + ["--interpolate", "1", "2", "--scale", "17"]) == 2
    assert "argument --scale: must be at most 16, got 17" in capsys.readouterr().err


def test_per_epoch_eval_and_eval_print_one_floor_and_name_the_classifiers_test_images(
        mnist_classifier, small_mnist, tmp_path, monkeypatch, capsys):
    from nncgan.eval import classifier as C
    small_mnist["n"] = 1024  # the data the session's classifier was trained and measured on
    monkeypatch.setenv(C.ENV, str(mnist_classifier.parent))
    capsys.readouterr()
    assert cli.main(["train", str(ROOT / "graphs" / "cgan_mnist.yaml"), "--epochs", "1", "--batch-size", "64",
                     "--out", str(tmp_path / "gan")]) == 0
    trained = capsys.readouterr().out
    epoch_floor = re.search(r"epoch 1 eval: .*\((floor [^)]*)\)", trained).group(1)
    assert re.fullmatch(r"floor \d+\.\d{3}: 1000 real train vs 1024 test images", epoch_floor), epoch_floor
    # eval's --seed draws other latents; the floor (real images only) stays the one each epoch printed
    assert cli.main(["eval", str(tmp_path / "gan"), "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert epoch_floor in out, out
    # the classifier's accuracy: eval names how many test images it was measured on, as training's line did
    saved = C.read_test_accuracy(mnist_classifier, C.Classifier(mnist_classifier).epoch, with_count=True)
    assert f"test accuracy {saved[0]:.2%} on {saved[1]} test images" in out, out
    assert cli.main(["eval", str(mnist_classifier)]) == 0  # measured again: the same number
    again = capsys.readouterr().out
    assert f"test accuracy {saved[0]:.2%} on {saved[1]} test images" in again, again
