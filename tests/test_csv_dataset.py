"""NNC CSV datasets: export of MNIST as NNC's sample lays it out, read back through nnabla's
CsvDataSource into identical arrays; vector columns; the graph's Inputs checked against the
CSV; every bad input giving a DataError that names the CSV row and the file."""

import numpy as np
import pytest
from PIL import Image

from nncgan.data.spec import DatasetSpec
from nncgan.data.batches import iterator
from nncgan.data.csv_dataset import CsvSamples
from nncgan.data.export import export_csv
from nncgan.errors import DataError, GraphError
from nncgan.graph.parse import parse_graph

from conftest import CGAN

QUIET = lambda *a: None  # noqa: E731
N = 120


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("nnc_mnist")
    paths = export_csv("mnist", out, limit=N, data_dir=str(mnist_dir), log=QUIET)
    return out, paths


def load_csv(path):
    return DatasetSpec.of("csv", str(path)).load("train", log=QUIET)


def png(path, shape=(28, 28), value=None, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(len(str(path)))
    a = rng.randint(0, 256, shape if mode == "L" else shape + (3,)).astype(np.uint8) if value is None \
        else np.full(shape, value, np.uint8)
    Image.fromarray(a, mode).save(path)
    return a


def write_csv(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def graph_on(tmp_path, dataset_line, size="[1, 28, 28]"):
    text = CGAN.read_text().replace("  name: mnist ", f"  {dataset_line} #", 1)
    text = text.replace("size: [1, 28, 28]", f"size: {size}")
    g = tmp_path / "graph.yaml"
    g.write_text(text)
    return g


# ------------------------------------------------------------------------ round trip


def test_export_writes_nnc_sample_layout(exported):
    out, paths = exported
    assert [p.name for p in paths] == ["mnist_training.csv", "mnist_test.csv"]
    train = (out / "mnist_training.csv").read_text().splitlines()
    test = (out / "mnist_test.csv").read_text().splitlines()
    assert train[:2] == ["x:image,y:label", "./training/5/0.png,5"] and len(train) == N + 1
    assert test[:2] == ["x:image,y:label", "./validation/7/0.png,7"] and len(test) == N + 1
    assert sorted(p.name for p in (out / "training").iterdir()) == [str(d) for d in range(10)]
    assert not list(out.glob(".*.part"))


@pytest.mark.parametrize("split, csv_name", [("train", "mnist_training.csv"), ("test", "mnist_test.csv")])
def test_round_trip_gives_identical_arrays(exported, split, csv_name, mnist_dir):
    out, _ = exported
    want = DatasetSpec("mnist").load(split, str(mnist_dir), log=QUIET)
    info = DatasetSpec.of("csv", str(out / csv_name))
    assert info.variables == {"x": (1, 28, 28), "y": (1,)} and info.images == ("x",) and info.classes == 10
    got = info.load("train", log=QUIET)
    assert got["x"].dtype == np.uint8 and np.array_equal(got["x"], want["x"][:N])
    assert np.array_equal(got["y"], want["y"][:N].astype(np.float32))


def test_graph_on_csv_takes_variables_from_it(exported, tmp_path):
    out, _ = exported
    g = parse_graph(graph_on(tmp_path, f"csv: {out / 'mnist_training.csv'}"))
    assert g.dataset.name == f"csv:{out / 'mnist_training.csv'}"
    assert g.dataset.variables == {"x": (1, 28, 28), "y": (1,)} and g.dataset.classes == 10
    assert g.dataset.load("train", log=QUIET)["x"].shape == (N, 1, 28, 28)


def test_graph_input_size_is_checked_against_the_csv(exported, tmp_path):
    out, _ = exported
    with pytest.raises(GraphError, match=r"size \(3, 28, 28\) does not match dataset variable 'x' of shape \(1, 28, 28\)"):
        parse_graph(graph_on(tmp_path, f"csv: {out / 'mnist_training.csv'}", size="[3, 28, 28]"))


def test_vector_columns(tmp_path):
    c = write_csv(tmp_path / "v.csv", "x__0,x__1,x__2,y:label\n0.5,1,2,0\n3,4,5.25,1\n")
    info = DatasetSpec.of("csv", str(c))
    assert info.variables == {"x": (3,), "y": (1,)} and info.images == () and info.classes == 2
    arrays = info.load("train", log=QUIET)
    assert arrays["x"].tolist() == [[0.5, 1, 2], [3, 4, 5.25]] and arrays["y"].tolist() == [[0], [1]]


def test_csv_path_is_relative_to_the_graph(exported, tmp_path):
    out, _ = exported
    (tmp_path / "graphs").mkdir()
    g = graph_on(tmp_path, "csv: ../nnc/mnist_training.csv")
    g.rename(tmp_path / "graphs" / "graph.yaml")
    (tmp_path / "nnc").symlink_to(out)
    assert parse_graph(tmp_path / "graphs" / "graph.yaml").dataset.classes == 10


def test_rgb_images_keep_three_channels(tmp_path):
    a = png(tmp_path / "img" / "a.png", (8, 6), mode="RGB")
    png(tmp_path / "img" / "b.png", (8, 6), mode="RGB")
    write_csv(tmp_path / "c.csv", "x:image,y:label\nimg/a.png,0\nimg/b.png,0\n")
    arrays = load_csv(tmp_path / "c.csv")
    assert arrays["x"].shape == (2, 3, 8, 6) and np.array_equal(arrays["x"][0], a.transpose(2, 0, 1))


# ------------------------------------------------------------------------- bad data


@pytest.fixture
def two_rows(tmp_path):
    png(tmp_path / "img" / "0.png")
    png(tmp_path / "img" / "1.png")
    return tmp_path


def expect_error(path, *fragments, when="parse"):
    """The error comes when the graph is parsed (the registry describes the CSV) or, for what
    only reading every file can show, when the data is loaded: both before any training."""
    with pytest.raises(DataError) as err:
        info = DatasetSpec.of("csv", str(path))
        assert when == "load", "the error should have come when the CSV was described"
        info.load("train", log=QUIET)
    for f in fragments:
        assert f in str(err.value), str(err.value)
    return str(err.value)


def test_missing_csv(tmp_path):
    expect_error(tmp_path / "nope.csv", f"{tmp_path / 'nope.csv'}: no such CSV file")


def test_missing_csv_is_a_graph_problem_with_its_line(tmp_path):
    with pytest.raises(GraphError) as err:
        parse_graph(graph_on(tmp_path, "csv: nope.csv"))
    assert "graph.yaml:17:" in str(err.value) and "nope.csv: no such CSV file" in str(err.value)


def test_empty_csv(tmp_path):
    expect_error(write_csv(tmp_path / "e.csv", ""), "e.csv: empty")


def test_missing_image_names_row_and_file(two_rows):
    c = write_csv(two_rows / "c.csv", "x:image,y:label\nimg/0.png,0\nimg/1.png,1\nimg/2.png,1\n")
    expect_error(c, f"{c}: row 3 (line 4): {two_rows / 'img' / '2.png'}: no such file")


def test_corrupt_image_names_row_and_file(two_rows):
    (two_rows / "img" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    c = write_csv(two_rows / "c.csv", "x:image,y:label\nimg/0.png,0\nimg/1.png,1\n")
    expect_error(c, f"{c}: row 2 (line 3): {two_rows / 'img' / '1.png'}: cannot read", when="load")


def test_image_that_is_a_directory_is_unreadable(two_rows):
    (two_rows / "img" / "d.png").mkdir()
    c = write_csv(two_rows / "c.csv", "x:image,y:label\nimg/0.png,0\nimg/d.png,1\n")
    expect_error(c, f"row 2 (line 3): {two_rows / 'img' / 'd.png'}: no such file")


@pytest.mark.parametrize("shape, mode, got", [((32, 32), "L", "(1, 32, 32)"), ((28, 28), "RGB", "(3, 28, 28)")])
def test_wrong_image_size_or_channels(two_rows, shape, mode, got):
    png(two_rows / "img" / "odd.png", shape, mode=mode)
    c = write_csv(two_rows / "c.csv", "x:image,y:label\nimg/0.png,0\nimg/1.png,1\nimg/odd.png,1\n")
    expect_error(c, f"row 3 (line 4): {two_rows / 'img' / 'odd.png'}: image of 'x' is {got}",
                 "row 1's is (1, 28, 28)", when="load")


def test_short_row(two_rows):
    c = write_csv(two_rows / "c.csv", "x:image,y:label\nimg/0.png,0\nimg/1.png\n")
    expect_error(c, f"{c}: row 2 (line 3): 1 cells, the header has 2")


def test_text_in_a_vector_column(tmp_path):
    c = write_csv(tmp_path / "v.csv", "x__0,x__1\n1,2\n3,abc\n")
    expect_error(c, "row 2 (line 3): 'x__1' must be a number, got 'abc'", when="load")


def test_empty_class(two_rows):
    c = write_csv(two_rows / "c.csv", "x:image,y:label\nimg/0.png,0\nimg/1.png,2\n")
    expect_error(c, f"{c}: labels of 'y' run 0..2 but no row has label 1: an empty class")


def test_label_outside_the_graphs_classes_stops_before_training(tmp_path):
    from nncgan.train.loop import train
    rows = []
    for k in range(11):  # 11 classes; the cgan graph's OneHot has 10
        png(tmp_path / "img" / f"{k}.png")
        rows.append(f"img/{k}.png,{k}")
    c = write_csv(tmp_path / "c.csv", "x:image,y:label\n" + "\n".join(rows) + "\n")
    g = parse_graph(graph_on(tmp_path, f"csv: {c}"))
    with pytest.raises(DataError) as err:
        train(g, tmp_path / "run", max_epoch=1, log=QUIET, quiet=True)
    assert f"{c}: row 11 (line 12): label 10 in 'y', outside the graph's classes 0..9 (OneHot" in str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


# ------------------------------------------------------------------------ streaming


def test_streamed_csv_gives_the_same_batches_as_in_memory(exported, monkeypatch):
    out, _ = exported
    in_memory = load_csv(out / "mnist_training.csv")
    monkeypatch.setenv("NNCGAN_MEMORY_LIMIT_MB", "0.01")
    streamed = load_csv(out / "mnist_training.csv")
    assert isinstance(streamed, CsvSamples) and isinstance(in_memory, dict)
    a, iters = iterator(in_memory, 40, seed=3)
    b, _ = iterator(streamed, 40, seed=3)
    epochs = []
    for _ in range(2):
        batches = [(a.next(), b.next()) for _ in range(iters)]
        for (xa, ya), (xb, yb) in batches:
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
        epochs.append(np.concatenate([y for (_, y), _ in batches]).ravel())
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled each epoch
    assert sorted(epochs[0]) == sorted(epochs[1])  # 120 = 3 batches of 40: every sample, each epoch


def test_cli_exports_fashion_mnist(tmp_path, capsys, fashion_mnist_dir):
    from nncgan.cli import main
    assert main(["dataset", "export", "fashion-mnist", str(tmp_path), "--split", "test", "--limit", "3",
                 "--data-dir", str(fashion_mnist_dir)]) == 0
    assert (tmp_path / "fashion_mnist_test.csv").read_text().splitlines() == [
        "x:image,y:label", "./validation/9/0.png,9", "./validation/2/1.png,2", "./validation/1/2.png,1"]
    assert not (tmp_path / "fashion_mnist_training.csv").exists()
    assert main(["dataset", "export", "cifar10", str(tmp_path)]) == 2
    assert "cannot export 'cifar10'; exportable: mnist, fashion-mnist" in capsys.readouterr().err


def test_streamed_csv_checks_image_sizes_before_training(two_rows, monkeypatch):
    png(two_rows / "img" / "odd.png", (28, 30))
    c = write_csv(two_rows / "c.csv", "x:image,y:label\nimg/0.png,0\nimg/1.png,1\nimg/odd.png,1\n")
    monkeypatch.setenv("NNCGAN_MEMORY_LIMIT_MB", "0")
    expect_error(c, f"row 3 (line 4): {two_rows / 'img' / 'odd.png'}: image of 'x' is 28x30 (height x width); "
                    f"row 1's is 28x28", when="load")
