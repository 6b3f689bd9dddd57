"""The graph's dataset as a DatasetSpec: render writes it back as written for every kind, one
place applies the sample limit (training's split only), and the data package has no import cycle."""
import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nncgan import cli
from nncgan.graph.parse import parse_graph

from conftest import CGAN, ROOT

STROKES = """nncgan: 1
dataset: {name: mnist, derive: {type: strokes}}
config: {max_epoch: 1, batch_size: 4}
networks:
  N:
    layers:
      - {name: a, type: Input, size: [1, 28, 28], dataset: a}
      - {name: C, type: Convolution, out_maps: 1, kernel_shape: [3, 3], pad: [1, 1]}
      - {name: L, type: SquaredError, target: {dataset: b}}
    outputs: {y: C}
optimizers: {O: {network: N, solver: {type: Adam}}}
executors: {E: {network: N, output: y}}
"""


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((28, 28), value, np.uint8)).save(path)


def _cgan_on(tmp_path, dataset):
    """graphs/cgan_mnist.yaml with its `dataset:` mapping's first line replaced by `dataset`."""
    g = tmp_path / "g.yaml"
    g.write_text(CGAN.read_text().replace("  name: mnist ", f"  {dataset} #", 1))
    return g


def _csv_graph(tmp_path):
    rows = ["x:image,y:label"]
    for k in range(10):
        _png(tmp_path / "img" / f"{k}.png", 20 * k)
    rows += [f"img/{i % 10}.png,{i % 10}" for i in range(64)]  # a batch of cgan_mnist's 64
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    return _cgan_on(tmp_path, "csv: train.csv")


def _folder_graph(tmp_path):
    for k in range(10):
        _png(tmp_path / "digits" / f"d{k}" / "0.png", 20 * k)
    return _cgan_on(tmp_path, "folder: digits\n  size: [1, 28, 28]\n  layout: classes")


def _derived_graph(tmp_path):
    g = tmp_path / "g.yaml"
    g.write_text(STROKES.replace("{type: strokes}", "{type: edges, threshold: 0.3}"))
    return g


GRAPHS = {
    "mnist": lambda tmp_path: CGAN,
    "fashion-mnist": lambda tmp_path: ROOT / "graphs" / "cgan_fashion.yaml",
    "csv": _csv_graph,
    "folder": _folder_graph,
    "derived": _derived_graph,
}


@pytest.mark.parametrize("kind", sorted(GRAPHS))
def test_render_then_check_round_trips_every_dataset_kind(kind, tmp_path, capsys):
    """`nncgan render` writes the `dataset:` mapping back as written (a CSV's or a folder's path,
    size and layout; a derivation), so `nncgan check` accepts the result and reads the same dataset."""
    g = GRAPHS[kind](tmp_path)
    capsys.readouterr()
    assert cli.main(["render", str(g)]) == 0
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(capsys.readouterr().out)
    assert cli.main(["check", str(rendered)]) == 0, capsys.readouterr().err
    again, first = parse_graph(rendered), parse_graph(g)
    assert (again.dataset.name, again.dataset.variables, again.dataset.classes) == \
        (first.dataset.name, first.dataset.variables, first.dataset.classes)


def test_rendered_mapping_is_the_one_written(tmp_path):
    from nncgan.data.spec import DatasetSpec
    spec = parse_graph(_folder_graph(tmp_path)).dataset
    assert spec.mapping() == {"folder": str(tmp_path / "digits"), "size": [1, 28, 28], "layout": "classes"}
    assert spec == DatasetSpec.of("folder", str(tmp_path / "digits"), size=[1, 28, 28], layout="classes")
    assert hash(spec) == hash(DatasetSpec.of("folder", str(tmp_path / "digits"), size=[1, 28, 28], layout="classes"))
    assert parse_graph(_derived_graph(tmp_path)).dataset.mapping() == \
        {"name": "mnist", "derive": {"type": "edges", "threshold": 0.3}}


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_the_sample_limit_never_cuts_the_test_split(name, monkeypatch):
    """NNCGAN_LIMIT_SAMPLES is --limit-samples: it limits what training reads. The test split (a
    classifier's accuracy, the scores' real statistics, infer's inputs) is the whole of it, so a quick
    run is scored on the same images as a full one; the data layer itself never reads the variable."""
    from conftest import dataset_dir
    from nncgan.eval.classifier import test_split
    monkeypatch.setenv("NNCGAN_LIMIT_SAMPLES", "10")
    images, labels = test_split(name, str(dataset_dir(name)))
    assert images.shape == (10000, 1, 28, 28) and labels.shape == (10000,)


def _train(tmp_path, name, mnist_dir, extra, env, monkeypatch, capsys):
    g = tmp_path / "strokes.yaml"
    g.write_text(STROKES)
    with monkeypatch.context() as mp:
        if env:
            mp.setenv("NNCGAN_LIMIT_SAMPLES", env)
        else:
            mp.delenv("NNCGAN_LIMIT_SAMPLES", raising=False)
        capsys.readouterr()
        assert cli.main(["train", str(g), "--out", str(tmp_path / name), "--data-dir", str(mnist_dir), "--no-eval",
                         "--quiet", "--context", "cpu"] + extra) == 0
    out = capsys.readouterr()
    return [line for line in (out.out + out.err).splitlines()
            if ("--limit-samples" in line or "samples (train)" in line) and "NNCGAN_LIMIT" not in line]


def test_limit_on_a_derived_dataset_is_applied_once_and_alike_from_option_or_variable(
        tmp_path, mnist_dir, monkeypatch, capsys):
    """The limit takes the first N samples of the base dataset, once, before deriving: the same
    training set whether it comes from --limit-samples or from NNCGAN_LIMIT_SAMPLES."""
    by_option = _train(tmp_path, "opt", mnist_dir, ["--limit-samples", "16"], None, monkeypatch, capsys)
    by_env = _train(tmp_path, "env", mnist_dir, [], "16", monkeypatch, capsys)
    assert by_option == by_env
    assert sum("--limit-samples 16:" in line for line in by_option) == 1
    assert any("mnist+strokes: 8 samples (train)" in line for line in by_option), by_option


def test_labels_are_checked_against_the_graphs_classes_through_the_spec(tmp_path):
    from nncgan.data.spec import DatasetSpec
    from nncgan.errors import DataError
    graph = parse_graph(CGAN)
    assert graph.label_classes() == {"y": (10, "OneHot 'OneHot' in network 'Generator'")}
    data = {"x": np.zeros((3, 1, 28, 28), np.uint8), "y": np.array([[1], [10], [2]], np.float32)}
    with pytest.raises(DataError, match=r"sample 2: label 10 in 'y', outside the graph's classes 0..9 "
                                        r"\(OneHot 'OneHot' in network 'Generator'\)"):
        DatasetSpec("mnist").check_labels(data, graph.label_classes())


def _imports(path, package):
    """Every nncgan.data module `path` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
            out |= {n.split(".")[0] for n in names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package + "."):
            out.add(node.module.split(".")[2])
    return out


def test_the_data_package_has_no_import_cycle():
    """Kinds are listed in the registry; the format modules never import it back."""
    folder = ROOT / "nncgan" / "data"
    graph = {p.stem: _imports(p, "nncgan.data") & {q.stem for q in folder.glob("*.py")}
             for p in folder.glob("*.py")}

    def cycle_from(start, seen=()):
        for nxt in graph.get(start, ()):
            if nxt in seen:
                return seen[seen.index(nxt):] + (nxt,)
            found = cycle_from(nxt, seen + (nxt,))
            if found:
                return found
        return None
    for module in graph:
        assert cycle_from(module, (module,)) is None, " -> ".join(cycle_from(module, (module,)))


def test_limit_reaches_the_monitor_pass_but_not_the_scores(tmp_path, mnist_dir, monkeypatch, capsys):
    """A run's monitors (NNC's monitor pass, a training-time loss) read the first N samples of their
    split under --limit-samples, as they did under NNCGAN_LIMIT_SAMPLES: a quick run stays quick."""
    monkeypatch.delenv("NNCGAN_LIMIT_SAMPLES", raising=False)
    monitor = "config.monitor={interval: 1, monitors: {valid: {network: DiscriminatorReal, dataset: validation}}}"
    capsys.readouterr()
    assert cli.main(["train", str(CGAN), "--out", str(tmp_path / "r"), "--data-dir", str(mnist_dir), "--no-eval",
                     "--quiet", "--context", "cpu", "--epochs", "1", "--batch-size", "16", "--limit-samples", "32",
                     "--set", monitor]) == 0
    out = capsys.readouterr().out
    assert "--limit-samples 32: training on the first 32 of 60000 samples" in out
    assert "--limit-samples 32: monitors read the first 32 of 10000 samples (test split)" in out
    assert "epoch 1 monitors: valid " in out
