"""nncgan report RUN: one page holding every epoch's tile (the very PNG bytes), the learning curves,
each epoch's losses, the eval numbers, run.json and the graph picture; it loads in chromium."""
import base64
import json
import re

import pytest

from nncgan import cli, run as runs
from nncgan.graph.parse import parse_graph

from browser import elements, load
from conftest import CGAN
from tiny_run import tiny_run

EVAL = {"fid": 123.456789, "label_accuracy": 0.8125, "per_label": {"0": 0.5, "7": 0.96875},
        "samples": 1000, "note": "<i>not html</i>"}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """The shared tiny run with an eval.json of nested numbers and text beside it."""
    run = tiny_run(tmp_path_factory)
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "eval.json").write_text(json.dumps(EVAL))
    return run


def images(html):
    """data-epoch -> the PNG bytes its figure shows."""
    out = {}
    for m in re.finditer(r'<figure data-epoch="(\d+)"><img [^>]*src="data:image/png;base64,([^"]+)"', html):
        out[int(m.group(1))] = base64.b64decode(m.group(2))
    return out


def test_report_holds_every_epoch_tile_curves_losses_eval_and_graph(trained_run, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert cli.main(["report", str(trained_run), "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    tiles = images(html)
    assert sorted(tiles) == [1, 2]
    for epoch, png in tiles.items():
        assert png == (trained_run / "samples" / f"epoch_{epoch:04d}.png").read_bytes()
    for name in ("Generator", "DiscriminatorFake", "DiscriminatorReal"):   # a curve per optimizer
        assert f'id="curve-{name}"' in html
    state = json.loads((trained_run / "checkpoints" / "epoch_0002" / "state.json").read_text())
    rows = {int(el["attrs"]["data-epoch"]): el["text"] for el in elements(html, "tr", "data-epoch")}
    for epoch, losses in state["losses"].items():
        for v in losses.values():
            assert f"{v:.4f}" in rows[int(epoch)]
    ev = {el["attrs"]["data-key"]: el["text"] for el in elements(html, "tr", "data-key")}
    assert ev["fid"].endswith("123.457") and ev["label_accuracy"].endswith("0.8125")
    assert ev["samples"].endswith("1000") and ev["7"].endswith("0.96875")   # nested: a sub-table
    assert "<i>not html</i>" not in html and "&lt;i&gt;not html&lt;/i&gt;" in html
    assert ev["status"].endswith("finished") and ev["epochs"].endswith("2")   # run.json
    graph = parse_graph(CGAN)
    layers = {el["attrs"]["data-layer"] for el in elements(html, "g", "data-layer")}
    assert layers == {f"{n.name}/{l.name}" for n in graph.networks.values() for l in n.layers}
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:|//)', html)
    assert str(out) in capsys.readouterr().out


def test_report_default_path_and_what_infer_drew(trained_run, capsys):
    assert cli.main(["infer", "--run", str(trained_run), "--label", "2", "--interpolate", "1", "2",
                     "--steps", "4"]) == 0
    assert cli.main(["report", str(trained_run)]) == 0
    html = (trained_run / "report.html").read_text(encoding="utf-8")
    strip = trained_run / "infer" / "label_2_interp_seed1-2.png"
    assert base64.b64encode(strip.read_bytes()).decode() in html


def test_report_of_a_run_without_epochs_says_what_is_missing(tmp_path):
    run = tmp_path / "empty"
    runs.new_run(parse_graph(CGAN), run)
    assert cli.main(["report", str(run)]) == 0
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "no epoch tiles yet" in html and "no loss series yet" in html and "no eval" in html
    assert images(html) == {} and 'data-layer="Generator/Sigmoid"' in html


def test_report_of_a_folder_that_is_no_run_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == 2
    assert "is not an nncgan run folder" in capsys.readouterr().err


def test_report_loads_in_chromium_with_every_picture(trained_run, tmp_path):
    out = tmp_path / "r.html"
    assert cli.main(["report", str(trained_run), "-o", str(out)]) == 0
    dom, console = load(out, tmp_path)
    assert console == []
    n = len(images(out.read_text(encoding="utf-8")))
    shown, total = map(int, re.search(r'data-images="(\d+)/(\d+)"', dom).groups())
    assert shown == total >= n == 2                              # every picture decoded
    assert re.search(r'data-view-ready="(\d+)"', dom).group(1) == str(
        sum(len(net.layers) for net in parse_graph(CGAN).networks.values()))
    assert 'id="curve-Generator"' in dom
